"""quantize_static: INT8 within the accuracy budget, the fallback and its limits, fidelity when labels are missing,
speed diagnosis, and user errors that name the problem and the fix."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.cache import Cache
from edgeopt.data import load_data
from edgeopt.errors import ConfigError, DataError
from edgeopt.fileio import sha256_file
from edgeopt.passes.base import PassContext
from edgeopt.passes.onnx.quantize_static import QuantizeStatic
from edgeopt.pipeline import Pipeline
from edgeopt.quant.record import read_record

FAST = {"speed_check": False}


@pytest.fixture
def model(tmp_path: Path, make_conv_classifier: Callable[..., onnx.ModelProto]) -> OnnxModel:
    path = tmp_path / "conv.onnx"
    path.write_bytes(make_conv_classifier("batch").SerializeToString())
    return OnnxModel.from_file(path)


def _labels(model: OnnxModel, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(str(model.path), so, providers=["CPUExecutionProvider"])
    return np.argmax(s.run(None, {"x": x})[0], axis=1)


def _ctx(model: OnnxModel, tmp_path: Path, calib_scale: float = 1.0, labels: bool = True, eval_data: bool = True,
         n: int = 200) -> PassContext:
    rng = np.random.default_rng(0)
    calib = {"x": (rng.standard_normal((48, 1, 8, 8)) * calib_scale).astype(np.float32)}
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    ev = {"x": x, "y": _labels(model, x)} if labels else {"x": x}
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return PassContext(work_dir=work, calibration=load_data(calib, model.input_specs()),
                       eval_data=load_data(ev, model.input_specs()) if eval_data else None)


def test_within_budget_through_the_pipeline(model: OnnxModel, tmp_path: Path) -> None:
    before = sha256_file(model.path)
    ctx = _ctx(model, tmp_path)
    res = Pipeline([QuantizeStatic({**FAST, "max_accuracy_drop": 2.0})]).run(model, ctx, Cache(enabled=False))
    out = res.artifact
    assert sha256_file(model.path) == before  # the input is never modified
    assert out.op_histogram()["QuantizeLinear"] >= 3
    record = read_record(out)
    assert record["mode"] == "static" and record["budget_met"] is True and record["quantized_nodes"] == 2
    assert record["score"]["metric"] == "top1" and record["score"]["drop_points"] <= 2.0
    notes = res.steps[0].notes
    assert any("top-1 accuracy on 200 evaluation samples: FP32 100.00%" in n for n in notes)
    assert any("calibration: minmax on 48 samples" in n for n in notes)


def test_bias_correction_is_applied_and_recorded(model: OnnxModel, tmp_path: Path) -> None:
    ctx = _ctx(model, tmp_path)
    plain = Pipeline([QuantizeStatic({**FAST, "max_accuracy_drop": None})]).run(model, ctx, Cache(enabled=False))
    res = Pipeline([QuantizeStatic({**FAST, "max_accuracy_drop": None, "bias_correction": True,
                                    "bias_correction_samples": 32})]).run(model, ctx, Cache(enabled=False))
    record = read_record(res.artifact)["bias_correction"]["int8"]
    assert record["corrected"] == 2 and record["samples"] == 32
    assert any(n.startswith("quantize_static: bias correction: 2 biases corrected") for n in res.steps[0].notes)
    int32 = {i.name: onnx.numpy_helper.to_array(i) for i in plain.artifact.proto.graph.initializer
             if i.data_type == TensorProto.INT32}
    changed = [i.name for i in res.artifact.proto.graph.initializer
               if i.name in int32 and not np.array_equal(onnx.numpy_helper.to_array(i), int32[i.name])]
    assert changed  # the int32 biases moved; everything else is the plain build


def test_unmeetable_budget_warns_and_keeps_best(model: OnnxModel, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    # Calibrated on tiny inputs, evaluated on normal ones: activations clip and accuracy drops whatever stays float.
    ctx = _ctx(model, tmp_path, calib_scale=0.05)
    cfg = {**FAST, "max_accuracy_drop": 0.5, "fallback_steps": 1}
    with caplog.at_level(logging.WARNING):
        out = QuantizeStatic(cfg).run(model, ctx, tmp_path / "out.onnx")
    record = read_record(out)
    assert record["budget_met"] is False and len(record["steps"]) == 2
    assert record["steps"][1]["float_nodes"] and record["sensitivity_db"]
    assert record["score"]["drop_points"] == min(s["score"]["drop_points"] for s in record["steps"])
    assert "could not meet the 0.5-point accuracy budget" in caplog.text
    assert any("kept the best build" in n for n in ctx.shared["notes"])


def test_fallback_keeps_sensitive_nodes_float(model: OnnxModel, tmp_path: Path) -> None:
    ctx = _ctx(model, tmp_path, calib_scale=0.05)
    out = QuantizeStatic({**FAST, "max_accuracy_drop": 0.5, "max_float_fraction": 1.0}).run(
        model, ctx, tmp_path / "out.onnx")
    record = read_record(out)
    assert record["budget_met"] is True and record["steps"][0]["score"]["drop_points"] > 0.5
    assert record["float_nodes"] == record["steps"][-1]["float_nodes"]
    assert any("accuracy fallback: kept" in n for n in ctx.shared["notes"])


def test_eval_without_labels_uses_fidelity(model: OnnxModel, tmp_path: Path) -> None:
    ctx = _ctx(model, tmp_path, labels=False)
    out = QuantizeStatic({**FAST, "max_accuracy_drop": 5.0}).run(model, ctx, tmp_path / "out.onnx")
    assert read_record(out)["score"]["metric"] == "top1_agreement"
    assert any("no labels" in n and "fidelity fallback" in n for n in ctx.shared["notes"])


def test_without_eval_data_checks_calibration_fidelity(model: OnnxModel, tmp_path: Path) -> None:
    ctx = _ctx(model, tmp_path, eval_data=False)
    out = QuantizeStatic({**FAST, "max_accuracy_drop": 5.0}).run(model, ctx, tmp_path / "out.onnx")
    record = read_record(out)
    assert record["score"]["metric"] == "top1_agreement" and "calibration samples" in record["evaluation"]
    assert any("no evaluation data" in n for n in ctx.shared["notes"])


def test_slow_int8_is_diagnosed(model: OnnxModel, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ctx = _ctx(model, tmp_path, n=32)
    cfg = {"max_accuracy_drop": None, "min_speedup": 1000.0, "timing_iters": 5, "threads": 1}
    with caplog.at_level(logging.WARNING):
        out = QuantizeStatic(cfg).run(model, ctx, tmp_path / "out.onnx")
    record = read_record(out)
    assert record["diagnosis"][0].startswith("INT8 runs at")
    assert "QOperator format" in " ".join(record["speed"]["remedies_tried"])
    assert any("remedies tried" in d for d in record["diagnosis"])
    assert "not faster than FP32" in caplog.text
    assert any(n.startswith("quantize_static: speed: INT8") for n in ctx.shared["notes"])


def test_model_without_compute_ops(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])])
    path = tmp_path / "relu.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    m = OnnxModel.from_file(path)
    ctx = PassContext(work_dir=tmp_path, calibration=load_data({"x": np.ones((4, 4), np.float32)}, m.input_specs()))
    with pytest.raises(ConfigError, match="has no ops that INT8 quantization speeds up.*drop --quantize"):
        QuantizeStatic(FAST).run(m, ctx, tmp_path / "out.onnx")


def test_user_errors(model: OnnxModel, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid config for pass 'quantize_static': methd"):
        QuantizeStatic({"methd": "entropy"})
    with pytest.raises(ConfigError, match="method"):
        QuantizeStatic({"method": "kl"})
    ctx = _ctx(model, tmp_path)
    with pytest.raises(DataError, match="has 48 samples but 1000 were asked for"):
        QuantizeStatic({**FAST, "samples": 1000}).run(model, ctx, tmp_path / "out.onnx")
    assert QuantizeStatic().check(PassContext(work_dir=tmp_path)) == [
        "pass 'quantize_static' needs calibration data (--calibration)"]


def test_eval_data_that_does_not_fit(model: OnnxModel, tmp_path: Path) -> None:
    ctx = _ctx(model, tmp_path)
    ctx.eval_data = load_data({"x": np.zeros((4, 1, 9, 9), np.float32)})
    with pytest.raises(DataError, match=r"shape \[N,1,9,9\] but the model expects"):
        QuantizeStatic(FAST).run(model, ctx, tmp_path / "out.onnx")


def test_mnist_cnn_keeps_accuracy(mnist_onnx: Path, repo_root: Path, tmp_path: Path) -> Any:
    """The third-party MNIST CNN (opset 9): INT8 within 0.3 points on 2,000 images and over 3x smaller."""
    m = OnnxModel.from_file(mnist_onnx)
    calib = load_data(repo_root / "calibration" / "mnist-calib.yaml", m.input_specs()).subset(0, 300)
    ev = load_data(repo_root / "calibration" / "mnist-eval.yaml", m.input_specs()).subset(0, 2000)
    ctx = PassContext(work_dir=tmp_path, calibration=calib, eval_data=ev)
    out = QuantizeStatic({**FAST, "max_accuracy_drop": 0.3}).run(m, ctx, tmp_path / "mnist_int8.onnx")
    record = read_record(out)
    assert record["score"]["drop_points"] <= 0.3 and record["float_score"] > 0.98
    assert m.size_bytes() / out.size_bytes() >= 3.0


def test_additive_attention_mask_stays_float(tmp_path: Path) -> None:
    """softmax(x W + mask) V with PyTorch's -3.4e38 mask: the nodes on the mask stay float and the INT8 build keeps
    the attention (an int8 range covering -3.4e38 would make every score the same code)."""
    rng = np.random.default_rng(0)
    lowest = float(np.finfo(np.float32).min)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["s"], name="scores"),
         helper.make_node("Add", ["s", "mask"], ["sm"], name="add_mask"),
         helper.make_node("Softmax", ["sm"], ["p"], name="softmax", axis=-1),
         helper.make_node("MatMul", ["p", "v"], ["y"], name="mix")], "attn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 16]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["b", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 8])],
        [onnx.numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w"),
         onnx.numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "v")])
    path = tmp_path / "attn.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    model = OnnxModel.from_file(path)
    x = rng.standard_normal((64, 16)).astype(np.float32)
    mask = np.where(np.arange(16)[None, :] < rng.integers(4, 16, (64, 1)), 0.0, lowest).astype(np.float32)
    data = load_data({"x": x, "mask": mask}, model.input_specs())
    ctx = PassContext(work_dir=tmp_path, calibration=data, eval_data=data)
    out = QuantizeStatic({**FAST, "max_accuracy_drop": None}).run(model, ctx, tmp_path / "int8.onnx")
    assert any("attention masks" in n and "softmax" in n for n in ctx.shared["notes"])
    q = onnx.load(str(out.path))
    assert "DequantizeLinear" in {n.op_type for n in q.graph.node}  # the MatMuls are still quantized
    so = ort.SessionOptions()
    so.log_severity_level = 3
    run = {p: ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"]) for p in (path, out.path)}
    ref, got = (run[p].run(None, {"x": x, "mask": mask})[0] for p in (path, out.path))
    cos = np.sum(ref * got, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    assert cos.min() > 0.98
