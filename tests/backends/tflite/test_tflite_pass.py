"""The to_tflite pass in pipelines and plans, the tflite-cpu target end to end, and int8 accuracy on MNIST."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import edgeopt
from edgeopt.api import plan
from edgeopt.artifacts.base import ArtifactKind
from edgeopt.artifacts.loading import load_model
from edgeopt.backends.base import get_backend
from edgeopt.backends.tflite.artifact import TfliteModel
from edgeopt.cache import Cache
from edgeopt.config import CompileConfig
from edgeopt.passes.base import PassContext
from edgeopt.passes.registry import REGISTRY
from edgeopt.pipeline import Pipeline

pytest.importorskip("ai_edge_litert")


def _chain(model: object, target: str, tmp_path: Path) -> list[str]:
    src = load_model(model)
    cfg = CompileConfig.build({"model": "m", "target": target}, source="test")
    planned = plan(cfg, src, PassContext(work_dir=tmp_path, input_specs=src.input_specs()))
    return [p.name for p in planned[0].pipeline.passes]


def test_registry_and_backend() -> None:
    cls = REGISTRY.get("to_tflite")
    assert cls.input_kind == ArtifactKind.ONNX and cls.output_kind == ArtifactKind.TFLITE and cls.converts
    assert REGISTRY.converter(ArtifactKind.ONNX, ArtifactKind.TFLITE) is cls
    backend = get_backend("tflite")
    assert backend.availability() is None and backend.extra == "tflite"


def test_plan_uses_the_variant_passes_for_onnx_and_exports_torch(conv_onnx: Path, small_cnn: object,
                                                                 tmp_path: Path) -> None:
    assert _chain(conv_onnx, "tflite-cpu", tmp_path) == ["fix_batch", "simplify", "to_tflite"]
    assert _chain(small_cnn, "tflite-cpu", tmp_path) == ["export_onnx", "fix_batch", "simplify", "to_tflite"]
    assert _chain(small_cnn, "ort-cpu", tmp_path)[0] == "export_onnx"
    assert _chain(conv_onnx, "ort-cpu", tmp_path)[0] != "export_onnx"


def test_pipeline_runs_checks_and_caches(conv_onnx_dynamic: Path, tmp_path: Path) -> None:
    src = load_model(conv_onnx_dynamic)
    ctx = PassContext(work_dir=tmp_path / "work")
    (tmp_path / "work").mkdir()
    cache = Cache(tmp_path / "cache")
    steps = ["fix_batch", "simplify", ("to_tflite", {"precision": "fp32"})]
    res = Pipeline(steps).run(src, ctx, cache)
    assert isinstance(res.artifact, TfliteModel)
    check = res.steps[-1].check
    assert check is not None and check["ok"] and check["max_abs"] < 1e-4
    again = Pipeline(steps).run(src, ctx, cache)
    assert again.steps[-1].cached and again.artifact.sha256 == res.artifact.sha256


def test_fp16_pass_uses_a_looser_check(conv_onnx: Path, tmp_path: Path) -> None:
    p = REGISTRY.get("to_tflite")({"precision": "fp16"})
    assert p.check_tolerance[0] > REGISTRY.get("to_tflite")().check_tolerance[0]
    res = Pipeline([p]).run(load_model(conv_onnx), PassContext(work_dir=tmp_path), Cache(tmp_path / "c"))
    assert res.steps[0].check is not None and res.steps[0].check["ok"]
    assert res.artifact.op_histogram().get("DEQUANTIZE", 0) >= 2


def test_compile_mnist_matches_ort_top1(mnist_onnx: Path, repo_root: Path, tmp_path: Path) -> None:
    result = edgeopt.compile(str(mnist_onnx), target="tflite-cpu", data=str(repo_root / "calibration/mnist-eval.yaml"),
                             eval_samples=500, out=tmp_path / "out", variants=["fp32"], cache=False,
                             latency={"iters": 5, "warmup": 1})
    rows = {v["name"]: v for v in result.report["variants"]}
    ref, tfl = rows["reference"]["accuracy"]["top1"], rows["tflite-cpu/fp32"]["accuracy"]["top1"]
    assert abs(ref - tfl) <= 0.002, (ref, tfl)
    assert (tmp_path / "out" / "artifacts" / "tflite-cpu-fp32.tflite").is_file()


def _mnist(shared_data: Path, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    import gzip

    folder = shared_data / "mnist"
    images = np.frombuffer(gzip.open(folder / "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    labels = np.frombuffer(gzip.open(folder / "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    x = images.reshape(-1, 1, 28, 28)[start : start + n].astype(np.float32) / 255.0
    return ((x - 0.1307) / 0.3081).astype(np.float32), labels[start : start + n]


def test_int8_mnist_from_ort_qdq_keeps_accuracy(mnist_onnx: Path, shared_data: Path, tmp_path: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from tflite_helpers import run_ort, run_tflite, to_tflite

    model = onnx.version_converter.convert_version(onnx.load(str(mnist_onnx)), 13)  # per-channel Q/DQ needs 13
    name = model.graph.input[0].name
    float_path = tmp_path / "mnist13.onnx"
    onnx.save(model, str(float_path))
    calib, _ = _mnist(shared_data, 0, 64)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({name: calib[i : i + 1]} for i in range(len(calib)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    qdq_path = tmp_path / "mnist_qdq.onnx"
    quantize_static(str(float_path), str(qdq_path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
    qdq = onnx.load(str(qdq_path))
    art = to_tflite(qdq, tmp_path / "m.tflite", precision="int8")
    x, y = _mnist(shared_data, 1000, 300)
    ort_hits = tfl_hits = 0
    for i in range(len(x)):
        feeds = {name: x[i : i + 1]}
        ort_hits += int(np.argmax(run_ort(qdq, feeds)[0]) == y[i])
        tfl_hits += int(np.argmax(run_tflite(art, feeds)[0]) == y[i])
    assert abs(ort_hits - tfl_hits) / len(x) <= 0.01, (ort_hits, tfl_hits)
    assert tfl_hits / len(x) > 0.95


def test_pass_takes_static_sizes_from_the_context(tmp_path: Path) -> None:
    from onnx import helper
    from tflite_helpers import make_model

    from edgeopt.artifacts.base import TensorSpec
    from edgeopt.artifacts.onnx_model import OnnxModel

    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": ("batch", 3, "h", 8)}, ["y"])
    src = tmp_path / "dyn.onnx"
    onnx.save(model, str(src))
    ctx = PassContext(work_dir=tmp_path, input_specs=[TensorSpec("x", ("batch", 3, 5, 8))])
    art = REGISTRY.get("to_tflite")().run(OnnxModel.from_file(src), ctx, tmp_path / "m.tflite")
    assert art.input_specs()[0].shape == (1, 3, 5, 8)


def test_quantize_adds_int8_variants_that_lower_qdq(conv_onnx: Path, tmp_path: Path) -> None:
    from edgeopt.backends.tflite.variants import static_served, tflite_variants
    from edgeopt.targets import get_target

    cfg = CompileConfig.build({"model": "m", "target": "tflite-cpu", "quantize": "auto"}, source="test")
    target = get_target("tflite-cpu")
    specs = {v.name: v for v in tflite_variants(target, cfg)}
    assert ("int8" in specs) == static_served(target)
    if "int8" in specs:
        static = [next(iter(s)) if isinstance(s, dict) else s for s in specs["int8"].passes]
        assert static == ["fix_batch", "simplify", "quantize_static", "to_tflite"]
        assert specs["int8"].passes[2]["quantize_static"]["activation_type"] == "int8"
        assert specs["int8"].passes[-1] == {"to_tflite": {"precision": "int8"}}
    cfg = CompileConfig.build({"model": "m", "target": "tflite-cpu", "quantize": "dynamic"}, source="test")
    assert _chain(conv_onnx, "tflite-cpu", tmp_path) == ["fix_batch", "simplify", "to_tflite"]
    src = load_model(conv_onnx)
    planned = plan(cfg, src, PassContext(work_dir=tmp_path, input_specs=src.input_specs()))
    dyn = next(p for p in planned if p.spec.name == "int8-dynamic")
    assert dyn.pipeline.passes[-1].config_dict()["precision"] == "dynamic_int8"


def test_int8_tflite_build_carries_its_quantization_record(conv_onnx: Path, conv_npz: Path, tmp_path: Path) -> None:
    """The .tflite lowered from edgeopt's Q/DQ keeps its record: the report row says what was quantized, and the
    calibration table is written beside the .tflite as beside the ORT build."""
    import edgeopt

    res = edgeopt.compile(conv_onnx, target=["tflite-cpu"], variants=["int8"], quantize="static",
                          calibration=conv_npz, data=conv_npz, out=tmp_path / "out", cache=False, latency={"iters": 5})
    row = next(v for v in res.report["variants"] if v["name"] == "tflite-cpu/int8")
    assert row["status"] == "ok" and row["quantization"]["mode"] == "static"
    art = res.artifacts["tflite-cpu/int8"]
    sidecar = art.with_name(art.stem + ".calibration.json")
    assert sidecar.exists() and "tensors" in sidecar.read_text()
