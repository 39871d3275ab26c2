"""Empirical bias correction: the per-channel mean shift INT8 causes at a layer's output shrinks on held-out data,
for int32 biases behind a DequantizeLinear (ONNX Runtime form) and float biases (TensorRT form); nothing but the
biases changes; nodes without a bias are listed, not invented."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from edgeopt.quant import ORT_X86, calibrate, emit_qdq, prepare_model
from edgeopt.quant.bias_correction import correct_biases
from edgeopt.quant.emit import TENSORRT
from edgeopt.quant.graph import with_outputs


def _skewed_cnn(cnn: onnx.ModelProto, work: Path) -> onnx.ModelProto:
    """The depthwise CNN with one huge output channel in conv2: per-tensor int8 weights round the other 15 channels
    coarsely, which shifts their output means (the inputs are post-ReLU, so the rounding errors do not cancel)."""
    model = onnx.ModelProto()
    model.CopyFrom(cnn)
    w = next(i for i in model.graph.initializer if i.name == "c2_w")
    value = numpy_helper.to_array(w).copy()
    value[0] *= 60.0
    w.CopyFrom(numpy_helper.from_array(value, "c2_w"))
    return prepare_model(model, work)


def _conv2_shift(float_model: onnx.ModelProto, qdq: onnx.ModelProto, x: np.ndarray) -> float:
    """Mean over channels of |per-channel mean of (quantized - float)| at conv2's output, on `x`."""
    def out(model: onnx.ModelProto) -> np.ndarray:
        name = next(n.output[0] for n in model.graph.node if n.name == "conv2")
        so = ort.SessionOptions()
        so.log_severity_level = 3
        s = ort.InferenceSession(with_outputs(model, [name]).SerializeToString(), so,
                                 providers=["CPUExecutionProvider"])
        return s.run([name], {"x": x})[0]

    diff = out(qdq).astype(np.float64) - out(float_model)
    return float(np.mean(np.abs(diff.mean(axis=(0, 2, 3))[1:])))  # channel 0 is the well-ranged one


def _changed_initializers(a: onnx.ModelProto, b: onnx.ModelProto) -> set[str]:
    before = {i.name: numpy_helper.to_array(i) for i in a.graph.initializer}
    return {i.name for i in b.graph.initializer if not np.array_equal(numpy_helper.to_array(i), before[i.name])}


@pytest.mark.parametrize("spec", [ORT_X86, TENSORRT], ids=["int32-bias", "float-bias"])
def test_correction_shrinks_the_mean_shift_on_held_out_data(
    spec: Any, cnn: onnx.ModelProto, make_data: Callable[..., Any], work: Path
) -> None:
    model = _skewed_cnn(cnn, work)
    rng = np.random.default_rng(3)
    calib_x = np.abs(rng.standard_normal((64, 3, 12, 12))).astype(np.float32) + 0.5  # positive-mean inputs
    held_out = np.abs(rng.standard_normal((64, 3, 12, 12))).astype(np.float32) + 0.5
    data = make_data(model, calib_x, labels=False)
    qdq = emit_qdq(model, calibrate(model, data), spec.model_copy(update={"per_channel": False})).model
    corrected, record = correct_biases(model, qdq, data, samples=64)
    before, after = _conv2_shift(model, qdq, held_out), _conv2_shift(model, corrected, held_out)
    assert after < 0.5 * before, (before, after)
    assert record["corrected"] == 4 and record["samples"] == 64 and record["skipped_no_bias"] == []
    assert set(record["largest_shifts"]) <= {"conv1", "dwconv", "conv2", "fc"}
    changed = _changed_initializers(qdq, corrected)
    bias_tensors = {n.input[2] for n in qdq.graph.node if n.op_type in ("Conv", "Gemm")}
    if spec.quantize_bias:  # int32 biases behind a DequantizeLinear: the int32 tensors change, still int32
        dq_inputs = {n.output[0]: n.input[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear"}
        bias_tensors = {dq_inputs[b] for b in bias_tensors}
        assert all(i.data_type == onnx.TensorProto.INT32 for i in corrected.graph.initializer if i.name in changed)
    assert changed and changed <= bias_tensors
    assert [n.SerializeToString() for n in corrected.graph.node] == [n.SerializeToString() for n in qdq.graph.node]


def test_nodes_without_bias_are_listed(cnn: onnx.ModelProto, cnn_x: np.ndarray, make_data: Callable[..., Any],
                                       work: Path) -> None:
    model = prepare_model(cnn, work)
    conv1 = next(n for n in model.graph.node if n.name == "conv1")
    del conv1.input[2]
    data = make_data(model, cnn_x, labels=False)
    qdq = emit_qdq(model, calibrate(model, data), ORT_X86).model
    corrected, record = correct_biases(model, qdq, data, samples=16)
    assert record["skipped_no_bias"] == ["conv1"] and record["corrected"] == 3
    assert len(corrected.graph.input) == len(qdq.graph.input)  # the biases fed while measuring are initializers again
    assert _changed_initializers(qdq, corrected)
