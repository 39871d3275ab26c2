"""Strongly typed TensorRT builds (target trt-gpu-typed; TensorRT 11, TensorRT 10 with --stronglyTyped): the FP16-typed
ONNX the `fp16_typed` pass writes runs under ONNX Runtime and agrees with the FP32-typed build, Q/DQ scales become
FP16 at opset 19 without breaking a placement rule, and the backend builds from the types (no precision flags)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.backends.tensorrt.backend import TensorrtBackend
from edgeopt.backends.tensorrt.placement import check_placement
from edgeopt.cli import main
from edgeopt.errors import ConfigError
from edgeopt.passes.onnx.fp16_typed import FP16_QDQ_OPSET, is_fp16_typed, to_fp16_typed
from tests.backends.trt_gpu.test_qdq_tensorrt import _quantize, _run

F16 = TensorProto.FLOAT16


def _scale_types(model: onnx.ModelProto) -> set[int]:
    inits = {i.name: i.data_type for i in model.graph.initializer}
    return {inits[n.input[1]] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def test_trained_digits_typed_agree_with_their_fp32_typed_builds(digits_onnx: tuple, tmp_path: Path) -> None:
    path, calib, x_test, y_test = digits_onnx
    float_model = onnx.load(str(path))
    int8 = _quantize(path, np.load(calib)["x"], tmp_path, name="input")
    for before in (float_model, int8):
        typed = to_fp16_typed(before)
        onnx.checker.check_model(typed)
        assert is_fp16_typed(typed) and not is_fp16_typed(before)
        # Callers feed and read FP32 as before; inside, every float initializer is FP16.
        assert [i.type.tensor_type.elem_type for i in [*typed.graph.input, *typed.graph.output]] == [1, 1]
        assert {i.data_type for i in typed.graph.initializer} <= {F16, TensorProto.INT8, TensorProto.INT64}
        ref, got = _run(before, {"input": x_test}), _run(typed, {"input": x_test})
        assert got.dtype == np.float32
        agreement = float(np.mean(ref.argmax(1) == got.argmax(1)))
        assert agreement >= 0.99, agreement
        assert float(np.mean(got.argmax(1) == y_test)) >= float(np.mean(ref.argmax(1) == y_test)) - 0.01
    typed = to_fp16_typed(int8)
    assert _opset(int8) < FP16_QDQ_OPSET <= _opset(typed) and _scale_types(typed) == {F16}
    assert check_placement(typed) == []  # Casts at the edges and FP16 scales break no placement rule
    weights = {i.data_type for i in typed.graph.initializer if i.name.endswith("_quantized")}
    assert weights == {TensorProto.INT8}


def test_keep_fp32_leaves_the_named_node_fp32(residual_onnx: Path) -> None:
    model = onnx.load(str(residual_onnx))
    typed = to_fp16_typed(model, ["fc"])
    inits = {i.name: i.data_type for i in typed.graph.initializer}
    assert inits["wf"] == TensorProto.FLOAT and inits["w1"] == F16
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    assert np.allclose(_run(typed, {"x": x}), _run(model, {"x": x}), atol=2e-2)
    with pytest.raises(ConfigError, match="keep_fp32 names nodes the model does not have: nope"):
        to_fp16_typed(model, ["nope"])


def test_strongly_typed_plan_reads_the_types(residual_onnx: Path, tmp_path: Path) -> None:
    fp32 = OnnxModel.from_file(residual_onnx)
    onnx.save(to_fp16_typed(fp32.proto), str(tmp_path / "typed.onnx"))
    typed = OnnxModel.from_file(tmp_path / "typed.onnx")
    backend = TensorrtBackend({"strongly_typed": True})
    plan = backend.plan(typed)
    assert (plan.int8, plan.fp16, plan.precision) == (False, True, "fp16 (strongly typed)")
    with pytest.raises(ConfigError, match="FP32-typed"):
        backend.plan(fp32)  # would build FP32: said, not silently built slower
    with pytest.raises(ConfigError, match="precision int8 needs a model with Q/DQ"):
        TensorrtBackend({"strongly_typed": True, "precision": "int8"}).plan(typed)
    assert TensorrtBackend().plan(fp32).precision == "fp16"  # the weakly typed build is unchanged


def test_strongly_typed_builds_run_on_tensorrt_10_and_11() -> None:
    from edgeopt.backends.tensorrt.trt_import import unsupported_version

    for version in ("10.3.0", "10.13.3.9", "11.4.0.106"):
        assert unsupported_version(version, strongly_typed=True) is None
    for version in ("12.0.0", "8.6.1"):
        why = unsupported_version(version, strongly_typed=True)
        assert why is not None and version in why
    weak = unsupported_version("11.4.0.106")
    assert weak is not None and "--target trt-gpu-typed" in weak


@pytest.mark.skipif(TensorrtBackend.availability() is None, reason="TensorRT and a GPU are present")
def test_compile_typed_target_writes_typed_onnx_and_strongly_typed_command(
    residual_onnx: Path, residual_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code = main(["compile", str(residual_onnx), "--target", "trt-gpu-typed", "--out", str(out), "--quiet", "--iters",
                 "5", "--cache-dir", str(tmp_path / "cache"), "--quantize", "static", "--calibration",
                 str(residual_npz)])
    assert code == 0
    rows = {v["name"]: v for v in json.loads((out / "report.json").read_text())["variants"]}
    for name, precision in (("trt-gpu-typed/int8", "int8+fp16"), ("trt-gpu-typed/fp16", "fp16")):
        row = rows[name]
        assert row["status"].startswith("engine not built: ") and row["engine"] is None
        assert row["trt_precision"] == f"{precision} (strongly typed)"
        args = shlex.split(row["build_command"])
        assert "--stronglyTyped" in args and "--fp16" not in args and "--int8" not in args
        model = onnx.load(str(out / row["artifact"]))
        assert is_fp16_typed(model) and check_placement(model) == []
        assert any("TensorRT 10 or 11" in n for n in row["notes"])
    int8 = onnx.load(str(out / rows["trt-gpu-typed/int8"]["artifact"]))
    assert _scale_types(int8) == {F16} and _opset(int8) >= FP16_QDQ_OPSET
    # The pass order: calibrated and placed on the FP32 graph, typed last.
    assert [p["pass"] for p in rows["trt-gpu-typed/int8"]["passes"]][-2:] == ["qdq_tensorrt", "fp16_typed"]
