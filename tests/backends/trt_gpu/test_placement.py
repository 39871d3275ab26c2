"""The TensorRT Q/DQ placement checker: it names the violations of ONNX Runtime's default quantization, and the
qdq_tensorrt output breaks no rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeopt.backends.tensorrt.placement import RULES, check_placement, qdq_sites, summarize


def _rules(violations: list) -> set[str]:
    return {v.rule for v in violations}


def test_float_model_has_no_violations(residual_onnx: Path) -> None:
    assert check_placement(onnx.load(str(residual_onnx))) == []


def test_ort_default_quantize_static_violations_are_named(ort_default_qdq: Path) -> None:
    found = check_placement(onnx.load(str(ort_default_qdq)))
    assert {"zero-point", "float-bias", "residual-add", "weight-per-channel"} <= _rules(found)
    assert summarize(found)["errors"] > 0
    by_rule = {(v.rule, v.node) for v in found}
    assert ("float-bias", "conv1") in by_rule and ("float-bias", "fc") in by_rule
    assert ("residual-add", "residual_add") in by_rule
    text = [str(v) for v in found]
    assert any("zero point" in t and "QuantizeLinear" in t for t in text)
    for v in found:  # every violation names its node, rule and fix
        assert v.node and v.rule in RULES and v.fix and v.rule in str(v) and v.node in str(v)


def test_uint8_activations_break_the_int8_rule(ort_uint8_qdq: Path) -> None:
    found = check_placement(onnx.load(str(ort_uint8_qdq)))
    int8 = [v for v in found if v.rule == "int8-type"]
    assert int8 and all("UINT8" in v.detail for v in int8)
    assert "zero-point" in _rules(found)


def _weight_dq_model(op: str, weight: np.ndarray, axis: int, **attrs: int) -> onnx.ModelProto:
    """One op whose weight comes through a symmetric INT8 per-channel DQ on `axis`; activation Q/DQ on input 0."""
    channels = weight.shape[axis]
    inits = [
        numpy_helper.from_array(np.zeros(weight.shape, np.int8), "wq"),
        numpy_helper.from_array(np.full(channels, 0.01, np.float32), "ws"),
        numpy_helper.from_array(np.zeros(channels, np.int8), "wz"),
        numpy_helper.from_array(np.array(0.1, np.float32), "xs"),
        numpy_helper.from_array(np.array(0, np.int8), "xz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq"),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="wdq", axis=axis),
        helper.make_node(op, ["xd", "w"], ["y"], name="op", **attrs),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_weight_axis_rule_per_op() -> None:
    w4 = np.zeros((6, 4, 3, 3), np.float32)
    assert check_placement(_weight_dq_model("Conv", w4, 0)) == []
    assert _rules(check_placement(_weight_dq_model("Conv", w4, 1))) == {"weight-axis"}
    assert check_placement(_weight_dq_model("ConvTranspose", w4, 1)) == []
    assert _rules(check_placement(_weight_dq_model("ConvTranspose", w4, 0))) == {"weight-axis"}
    w2 = np.zeros((5, 7), np.float32)
    assert check_placement(_weight_dq_model("Gemm", w2, 0, transB=1)) == []
    assert check_placement(_weight_dq_model("Gemm", w2, 1, transB=0)) == []
    assert _rules(check_placement(_weight_dq_model("Gemm", w2, 1, transB=1))) == {"weight-axis"}
    assert check_placement(_weight_dq_model("MatMul", w2, 1)) == []
    assert _rules(check_placement(_weight_dq_model("MatMul", w2, 0))) == {"weight-axis"}


def test_sites_follow_the_table(residual_onnx: Path) -> None:
    sites = {(s.node, s.input_index): s for s in qdq_sites(onnx.load(str(residual_onnx)))}
    assert sites[("conv1", 1)].weight and sites[("conv1", 1)].axis == 0
    assert sites[("fc", 1)].axis == 0  # Gemm with transB=1
    assert ("conv1", 2) not in sites and ("fc", 2) not in sites  # biases stay float
    # The residual Add: the Conv branch (input 0) stays float for Conv+Add fusion; the skip input is quantized.
    assert ("residual_add", 1) in sites and ("residual_add", 0) not in sites
