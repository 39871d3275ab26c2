"""quantize_dynamic: MatMul/Gemm weights to int8; a conv-dominated model is measured and flagged, not silently
shipped; the INT8 variants that --quantize adds to a target."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.config import CompileConfig
from edgeopt.data import load_data
from edgeopt.errors import ConfigError
from edgeopt.passes.base import PassContext
from edgeopt.passes.onnx.quantize import quantized_variants
from edgeopt.passes.onnx.quantize_dynamic import QuantizeDynamic
from edgeopt.quant.record import read_record
from edgeopt.targets import Target, get_target


def _saved(graph: onnx.GraphProto, path: Path) -> OnnxModel:
    """The graph as an opset-17 model file, loaded as an artifact."""
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return OnnxModel.from_file(path)


def _mlp_file(tmp_path: Path) -> OnnxModel:
    """x[b,64] -> MatMul(64x128) -> Relu -> MatMul(128x10): all compute in MatMul."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"), helper.make_node("Relu", ["h"], ["r"], name="r"),
         helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2")],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 10])],
        [numpy_helper.from_array((rng.standard_normal((64, 128)) * 0.2).astype(np.float32), "w1"),
         numpy_helper.from_array((rng.standard_normal((128, 10)) * 0.2).astype(np.float32), "w2")],
    )
    return _saved(graph, tmp_path / "mlp.onnx")


def test_dynamic_quantizes_matmuls(tmp_path: Path) -> None:
    model = _mlp_file(tmp_path)
    x = np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32)
    ctx = PassContext(work_dir=tmp_path, eval_data=load_data({"x": x}, model.input_specs()))
    out = QuantizeDynamic({"max_accuracy_drop": 5.0, "timing_iters": 5, "threads": 1}).run(
        model, ctx, tmp_path / "out.onnx")
    ops = out.op_histogram()
    assert ops.get("MatMulInteger", 0) + ops.get("DynamicQuantizeMatMul", 0) == 2 and "MatMul" not in ops
    record = read_record(out)
    assert record["mode"] == "dynamic" and record["mac_share"] == 1.0 and record["score"]["metric"] == "top1_agreement"
    assert record["speed"]["speedup"] > 0
    assert out.size_bytes() < model.size_bytes() / 2


def test_conv_model_is_measured_and_flagged(tmp_path: Path, make_conv_classifier: Callable[..., onnx.ModelProto],
                                            caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "conv.onnx"
    path.write_bytes(make_conv_classifier("batch").SerializeToString())
    model = OnnxModel.from_file(path)
    ctx = PassContext(work_dir=tmp_path)
    out = QuantizeDynamic({"timing_iters": 5, "threads": 1, "min_speedup": 1000.0}).run(model, ctx, tmp_path / "o.onnx")
    record = read_record(out)
    assert record["conv_mac_share"] > 0.5
    assert any("conv-dominated model" in d for d in record["diagnosis"])
    assert record["diagnosis"][0].startswith("dynamic INT8 runs at")
    assert any("use static quantization" in n for n in ctx.shared["notes"])
    assert "not faster than FP32" in caplog.text


def test_nothing_to_quantize_dynamically(tmp_path: Path, make_conv_classifier: Callable[..., onnx.ModelProto]) -> None:
    path = tmp_path / "conv.onnx"
    path.write_bytes(make_conv_classifier("batch").SerializeToString())
    with pytest.raises(ConfigError, match="no ops that INT8 quantization speeds up"):
        QuantizeDynamic({"op_types": ["LSTM"]}).run(OnnxModel.from_file(path), PassContext(work_dir=tmp_path),
                                                    tmp_path / "o.onnx")


@pytest.mark.parametrize(("mode", "names"), [("static", ["int8"]), ("dynamic", ["int8-dynamic"]),
                                             ("auto", ["int8", "int8-dynamic"])])
def test_quantized_variants_for_ort(mode: str, names: list[str]) -> None:
    cfg = CompileConfig.build({"model": "m.onnx", "quantize": mode, "calibration_method": "entropy",
                               "calibration_samples": 300, "max_accuracy_drop": 0.5, "latency": {"threads": 2},
                               "bias_correction": True})
    specs = quantized_variants(get_target("ort-cpu"), cfg)
    assert [s.name for s in specs] == names and {s.precision for s in specs} == {"int8"}
    chain = specs[0].passes
    assert chain[:2] == ["dynamic_batch", "simplify"] and "ort_optimize" not in chain
    if mode != "dynamic":
        static = chain[-1]["quantize_static"]
        assert static["method"] == "entropy" and static["samples"] == 300 and static["max_accuracy_drop"] == 0.5
        assert static["threads"] == 2 and static["format"] == ("auto" if mode == "auto" else "qdq")
        assert static["bias_correction"] is True


def test_quantized_variants_unknown_backend() -> None:
    target = Target(name="odd", backend="torch")
    cfg = CompileConfig.build({"model": "m.onnx", "quantize": "static"})
    with pytest.raises(ConfigError, match="not available for target 'odd'.*drop --quantize"):
        quantized_variants(target, cfg)


def _uneven_embedder(tmp_path: Path) -> OnnxModel:
    """x[b,16] -> MatMul(16x8) = an 8-d embedding whose weight column 0 is 1000x larger than the others but reads only
    x[:, 0], which the data keep at 0: per-tensor int8 scales round the useful columns to zero, per-channel keeps
    them."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((16, 8)) * 0.1).astype(np.float32)
    w[:, 0] = 0.0
    w[0, 0] = 100.0
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "emb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 8])], [numpy_helper.from_array(w, "w")])
    return _saved(graph, tmp_path / "emb.onnx")


def test_dynamic_falls_back_to_per_channel_on_a_declared_cosine_budget(tmp_path: Path) -> None:
    model = _uneven_embedder(tmp_path)
    x = np.random.default_rng(1).standard_normal((32, 16)).astype(np.float32)
    x[:, 0] = 0.0
    ctx = PassContext(work_dir=tmp_path, eval_data=load_data({"x": x}, model.input_specs()))
    out = QuantizeDynamic({"max_accuracy_drop": 1.0, "metric": "cosine", "speed_check": False}).run(
        model, ctx, tmp_path / "out.onnx")
    record = read_record(out)
    assert record["score"]["metric"] == "cosine"
    assert record["per_tensor_score"]["drop_points"] > 50  # the useful columns were rounded away
    assert record["per_channel"] is True and record["score"]["value"] >= 0.99


def test_embedding_table_is_quantized(tmp_path: Path) -> None:
    """ids[b,4] -> Gather(table 1000x64) -> MatMul(64x8): the table, most of the file, is stored as int8."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["e"], name="emb"),
         helper.make_node("MatMul", ["e", "w"], ["y"], name="mm")], "embed",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4, 8])],
        [numpy_helper.from_array(rng.standard_normal((1000, 64)).astype(np.float32), "table"),
         numpy_helper.from_array(rng.standard_normal((64, 8)).astype(np.float32), "w")])
    path = tmp_path / "embed.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    model = OnnxModel.from_file(path)
    ids = rng.integers(0, 1000, (16, 4)).astype(np.int64)
    ctx = PassContext(work_dir=tmp_path, eval_data=load_data({"ids": ids}, model.input_specs()))
    out = QuantizeDynamic({"speed_check": False, "metric": "cosine", "max_accuracy_drop": 1.0}).run(
        model, ctx, tmp_path / "out.onnx")
    tables = [i for i in onnx.load(str(out.path)).graph.initializer if i.dims and i.dims[0] == 1000]
    assert [t.data_type for t in tables] in ([TensorProto.INT8], [TensorProto.UINT8])
    assert out.size_bytes() < model.size_bytes() / 3 and read_record(out)["score"]["value"] > 0.99
