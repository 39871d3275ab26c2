"""Tiny real ONNX models and data sources the quantization tests build on (importable: quant_builders)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgeopt.data import load_data
from edgeopt.quant.collector import model_input_specs


def _w(rng: np.random.Generator, *shape: int, scale: float = 0.5) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def dw_cnn(batch: int | str = "batch", seed: int = 0) -> onnx.ModelProto:
    """x[b,3,12,12] -> Conv 3x3 (8) -> Relu -> depthwise 3x3 -> Relu -> Conv 1x1 (16) -> Relu -> GAP -> Gemm(10)."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(_w(rng, 8, 3, 3, 3), "c1_w"), numpy_helper.from_array(_w(rng, 8), "c1_b"),
        numpy_helper.from_array(_w(rng, 8, 1, 3, 3, scale=1.0), "dw_w"), numpy_helper.from_array(_w(rng, 8), "dw_b"),
        numpy_helper.from_array(_w(rng, 16, 8, 1, 1), "c2_w"), numpy_helper.from_array(_w(rng, 16), "c2_b"),
        numpy_helper.from_array(_w(rng, 10, 16), "fc_w"), numpy_helper.from_array(_w(rng, 10), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "c1_w", "c1_b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "dw_w", "dw_b"], ["d"], name="dwconv", pads=[1, 1, 1, 1], group=8),
        helper.make_node("Relu", ["d"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "c2_w", "c2_b"], ["c2"], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r3"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "dw_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 12, 12])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeopt-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def mlp(batch: int | str = "batch", seed: int = 0, bias: bool = True) -> onnx.ModelProto:
    """x[b,32] -> MatMul(32x64) (+ b) -> Relu -> MatMul(64x10) (+ b): MatMul-only compute (Gemm once the
    pre-processing fuses MatMul + Add)."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(_w(rng, 32, 64), "w1"), numpy_helper.from_array(_w(rng, 64), "b1"),
             numpy_helper.from_array(_w(rng, 64, 10), "w2"), numpy_helper.from_array(_w(rng, 10), "b2")]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"], name="mm1"),
        helper.make_node("Add", ["m1", "b1"], ["a1"], name="add1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "w2"], ["m2"], name="mm2"),
        helper.make_node("Add", ["m2", "b2"], ["logits"], name="add2"),
    ]
    if not bias:
        inits = [inits[0], inits[2]]
        nodes = [nodes[0], helper.make_node("Relu", ["m1"], ["r1"], name="relu1"),
                 helper.make_node("MatMul", ["r1", "w2"], ["logits"], name="mm2")]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeopt-tests")
    model.ir_version = 8
    return model


def no_compute(batch: int | str = "batch") -> onnx.ModelProto:
    """x -> Relu -> Add(const): nothing INT8 would speed up."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Add", ["r", "c"], ["y"], name="a")]
    graph = helper.make_graph(
        nodes, "no_compute", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        [numpy_helper.from_array(np.ones(4, np.float32), "c")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def float_predictions(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Top-1 of the float model (used as labels, so FP32 accuracy is exactly 100%)."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return np.argmax(session.run(None, {session.get_inputs()[0].name: x})[0], axis=1)


def make_source(model: onnx.ModelProto, x: np.ndarray, labels: bool = True) -> Any:
    """A DataSource over `x` bound to the model's input (labels from the float model when asked)."""
    arrays = {model.graph.input[0].name: x}
    if labels:
        arrays["y"] = float_predictions(model, x)
    return load_data(arrays, model_input_specs(model))


