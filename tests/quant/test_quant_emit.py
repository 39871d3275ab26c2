"""Q/DQ emission from a CalibrationTable: structure (op counts, U8S8 types, per-channel axes), the spec's parameters,
determinism, numbers close to float, and float nodes that ONNX Runtime must not re-quantize per-tensor at load."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from edgeopt.errors import DataError
from edgeopt.quant import ORT_X86, TENSORRT, CalibrationTable, calibrate, emit_qdq, prepare_model
from edgeopt.quant.speed import runtime_graph


@pytest.fixture(scope="module")
def prepared(cnn: onnx.ModelProto, tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    return prepare_model(cnn, tmp_path_factory.mktemp("prep"))


@pytest.fixture(scope="module")
def table(prepared: onnx.ModelProto, cnn_x: np.ndarray, make_data: Callable[..., Any]) -> CalibrationTable:
    return calibrate(prepared, make_data(prepared, cnn_x))


def _ops(model: onnx.ModelProto) -> dict[str, int]:
    return dict(collections.Counter(n.op_type for n in model.graph.node))


def _init(model: onnx.ModelProto, name: str) -> np.ndarray:
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name)


def _weight_dq(model: onnx.ModelProto, node_name: str) -> onnx.NodeProto:
    producers = {o: n for n in model.graph.node for o in n.output}
    node = next(n for n in model.graph.node if n.name == node_name)
    return producers[node.input[1]]


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def test_u8s8_per_channel_structure(prepared: onnx.ModelProto, table: CalibrationTable) -> None:
    r = emit_qdq(prepared, table, ORT_X86)
    ops = _ops(r.model)
    # 4 weighted nodes: weight + bias DQs; activations x, r1, r2, r3, p, f get one Q/DQ pair each; the logits
    # (a graph output written by Gemm) stay float.
    assert ops["QuantizeLinear"] == 6 and ops["DequantizeLinear"] == 6 + 8 and "Relu" not in ops
    assert next(n for n in r.model.graph.node if "logits" in n.output).name == "fc"
    rt = runtime_graph(r.model)  # ORT fuses every group: int8 convs, a float-output QGemm, nothing left unfused
    assert rt.ops["QLinearConv"] == 3 and rt.ops["QGemm"] == 1 and rt.unfused_dq == 0 and rt.float_kernels == 0
    assert r.quantized_nodes == ["conv1", "conv2", "dwconv", "fc"] and r.float_nodes == [] and r.protected_nodes == []
    for node in r.model.graph.node:
        if node.op_type == "QuantizeLinear":  # activations: uint8, asymmetric, per-tensor
            zp = _init(r.model, node.input[2])
            assert zp.dtype == np.uint8 and zp.shape == ()
    dq = _weight_dq(r.model, "conv1")
    assert _init(r.model, dq.input[0]).dtype == np.int8
    assert _init(r.model, dq.input[1]).shape == (8,) and {a.name: a.i for a in dq.attribute}["axis"] == 0
    assert not _init(r.model, dq.input[2]).any()  # symmetric weights
    fc = _weight_dq(r.model, "fc")
    assert _init(r.model, fc.input[1]).shape == (10,)  # Gemm transB=1: one scale per output row


def test_numbers_stay_close_to_float(prepared: onnx.ModelProto, table: CalibrationTable, cnn_x: np.ndarray) -> None:
    ref, got = _run(prepared, cnn_x), _run(emit_qdq(prepared, table, ORT_X86).model, cnn_x)
    cos = float(np.sum(ref * got) / np.sqrt(np.sum(ref * ref) * np.sum(got * got)))
    assert cos > 0.99
    assert np.mean(np.argmax(ref, 1) == np.argmax(got, 1)) >= 0.85


def test_float_closure_drops_useless_qdq(prepared: onnx.ModelProto, table: CalibrationTable) -> None:
    """Keeping fc float also keeps the pool/flatten chain before it float: no Q/DQ that only adds error."""
    r = emit_qdq(prepared, table, ORT_X86.model_copy(update={"exclude_nodes": ["fc"]}))
    quantized = {n.input[0] for n in r.model.graph.node if n.op_type == "QuantizeLinear"}
    assert quantized == {"x", "r1", "r2", "c2"}  # conv2 still writes int8; relu3, pool, flatten run float
    everything = emit_qdq(prepared, table, ORT_X86.model_copy(update={"exclude_nodes": r.quantized_nodes + ["fc"]}))
    assert "QuantizeLinear" not in _ops(everything.model)


def test_spec_parameters(prepared: onnx.ModelProto, table: CalibrationTable) -> None:
    per_tensor = emit_qdq(prepared, table, ORT_X86.model_copy(update={"per_channel": False})).model
    assert _init(per_tensor, _weight_dq(per_tensor, "conv1").input[1]).shape == ()
    conv_only = emit_qdq(prepared, table, ORT_X86.model_copy(update={"op_types": ["Conv"]}))
    assert conv_only.float_nodes == ["fc"]
    no_bias = emit_qdq(prepared, table, ORT_X86.model_copy(update={"quantize_bias": False})).model
    assert _ops(no_bias)["DequantizeLinear"] == 6 + 4
    rounded = emit_qdq(prepared, table, ORT_X86.model_copy(update={"float_outputs": False})).model
    assert _ops(rounded)["QuantizeLinear"] == 7
    trt = emit_qdq(prepared, table, TENSORRT).model
    for node in trt.graph.node:
        if node.op_type == "QuantizeLinear":  # symmetric int8 activations: zero point 0
            zp = _init(trt, node.input[2])
            assert zp.dtype == np.int8 and not zp.any()
    assert "Relu" in _ops(trt)  # kept explicit for TensorRT
    qop = emit_qdq(prepared, table, ORT_X86.model_copy(update={"format": "qoperator"})).model
    assert _ops(qop).get("QLinearConv") == 3


def test_per_channel_axis_parameter(tmp_path: Path) -> None:
    from quant_builders import make_source, mlp  # the quant tests' builders

    model = prepare_model(mlp(bias=False), tmp_path)
    x = np.random.default_rng(0).standard_normal((32, 32)).astype(np.float32)
    table = calibrate(model, make_source(model, x))
    r = emit_qdq(model, table, ORT_X86.model_copy(update={"per_channel_axes": {"MatMul": 1}}))
    dq = _weight_dq(r.model, "mm1")
    assert _init(r.model, dq.input[1]).shape == (64,) and {a.name: a.i for a in dq.attribute}["axis"] == 1


def test_emission_is_deterministic(prepared: onnx.ModelProto, table: CalibrationTable) -> None:
    a = emit_qdq(prepared, table, ORT_X86).model.SerializeToString(deterministic=True)
    b = emit_qdq(prepared, table, ORT_X86).model.SerializeToString(deterministic=True)
    assert a == b


def test_excluded_conv_stays_float_at_load(prepared: onnx.ModelProto, table: CalibrationTable,
                                           tmp_path: Path) -> None:
    """Regression for ORT's WeightBiasQuantization: an excluded conv between quantized ones must run float."""
    exact = ORT_X86.model_copy(update={"exclude_nodes": ["dwconv"], "float_closure": False})
    r = emit_qdq(prepared, table, exact)  # Q/DQ right around the excluded conv: the risky pattern
    assert r.float_nodes == ["dwconv"] and r.protected_nodes == ["dwconv"]
    rt = runtime_graph(r.model, tmp_path)
    assert rt.ops.get("QLinearConv") == 2 and rt.float_kernels >= 1
    closed = emit_qdq(prepared, table, ORT_X86.model_copy(update={"exclude_nodes": ["dwconv"]}))
    assert closed.float_nodes == ["dwconv"] and runtime_graph(closed.model, tmp_path).ops.get("QLinearConv") == 2
    # The same model with a per-tensor DequantizeLinear before the conv: ORT quantizes it per-tensor at load.
    bare = onnx.ModelProto()
    bare.CopyFrom(r.model)
    dw = next(n for n in bare.graph.node if n.name == "dwconv")
    dq = next(n for n in bare.graph.node if n.output and n.output[0] == dw.input[0])
    for i, name in enumerate(dq.input[1:], start=1):
        scalar = _init(bare, name).reshape(-1)[:1].reshape(())
        bare.graph.initializer.append(numpy_helper.from_array(scalar, name + "_scalar"))
        dq.input[i] = name + "_scalar"
    del dq.attribute[:]
    assert runtime_graph(bare, tmp_path).ops.get("QLinearConv") == 3


def test_table_must_cover_the_model(prepared: onnx.ModelProto, table: CalibrationTable) -> None:
    partial = CalibrationTable({k: v for k, v in table.stats.items() if k != "r2"}, "minmax")
    with pytest.raises(DataError, match="no ranges for 1 tensors of this model .* recalibrate"):
        emit_qdq(prepared, partial, ORT_X86)


def test_prepare_upgrades_old_opsets(tmp_path: Path) -> None:
    from quant_builders import dw_cnn

    old = dw_cnn()
    old.opset_import[0].version = 11
    prepared = prepare_model(old, tmp_path)
    assert next(o.version for o in prepared.opset_import if o.domain in ("", "ai.onnx")) >= 13
    assert prepared.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
