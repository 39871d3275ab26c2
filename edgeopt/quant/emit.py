"""Q/DQ emission from a CalibrationTable: ONNX Runtime's quantizer driven by edgeopt's ranges, for any target.

The choices a target makes are parameters of `QdqSpec`: activation/weight types and symmetry, per-channel weights and
their axis per op type, which op types and nodes get Q/DQ, QDQ or QOperator format, bias handling. ONNX Runtime gets
the table's ranges through its public calibration-cache path (no calibration data reader, no patching). The one thing
written by hand is `protect_float_nodes`, which ONNX Runtime cannot do (see its docstring).
"""

from __future__ import annotations

import collections
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from onnx import helper, numpy_helper
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.errors import DataError
from edgeopt.passes.onnx.common import drop_unused_initializers, save_onnx
from edgeopt.quant.calibration_table import CalibrationTable
from edgeopt.quant.graph import COMPUTE_OPS, activation_tensors, float_closure, name_nodes, static_op_types

log = logging.getLogger(__name__)

MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (axis attribute)


class QdqSpec(BaseModel):
    """How a target wants its Q/DQ graph: types, symmetry, granularity, coverage and format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    activation_type: Literal["uint8", "int8"] = "uint8"
    activation_symmetric: bool = False
    weight_type: Literal["int8", "uint8"] = "int8"
    weight_symmetric: bool = True
    per_channel: bool = True
    per_channel_axes: dict[str, int] = Field(default_factory=dict, description="weight channel axis per op type")
    op_types: list[str] | None = Field(None, description="op types that get Q/DQ; None: all ORT can quantize")
    exclude_op_types: list[str] = Field(default_factory=list)
    exclude_nodes: list[str] = Field(default_factory=list)
    format: Literal["qdq", "qoperator"] = "qdq"
    quantize_bias: bool = True
    reduce_range: bool = False
    keep_removable_activations: bool = False
    dedicated_qdq_pair: bool = False
    weight_qdq_pair: bool = False
    float_closure: bool = Field(True, description="also keep float the non-compute nodes between float nodes")
    float_outputs: bool = Field(True, description="graph outputs of Gemm/MatMul stay float (no output Q/DQ)")
    method: str | None = Field(None, description="range method of the table to use; None: the table's own")
    percentile: float | None = None

    def op_types_to_quantize(self) -> list[str]:
        """The op types that get Q/DQ after exclusions, sorted."""
        base = self.op_types if self.op_types is not None else static_op_types()
        return sorted(set(base) - set(self.exclude_op_types))


#: ONNX Runtime on x86: uint8 asymmetric activations, int8 symmetric per-channel weights (U8S8), QDQ.
ORT_X86 = QdqSpec()
#: TensorRT explicit quantization: symmetric int8 activations, Relu/Clip kept explicit, float bias, Q/DQ exactly
#: where the op types and exclusions say.
TENSORRT = QdqSpec(
    activation_type="int8", activation_symmetric=True, keep_removable_activations=True, quantize_bias=False,
    op_types=["Conv", "ConvTranspose", "Gemm", "MatMul"], float_closure=False, float_outputs=False,
)


@dataclass
class EmitResult:
    """The quantized model and what happened to the compute nodes."""

    model: onnx.ModelProto
    spec: QdqSpec
    quantized_nodes: list[str] = field(default_factory=list)
    float_nodes: list[str] = field(default_factory=list)
    protected_nodes: list[str] = field(default_factory=list)
    mask_nodes: list[str] = field(default_factory=list)


# Additive attention masks hold "minus infinity" as the dtype's lowest value (-3.4e38 in PyTorch's SDPA export). A
# range that covers it gives every real value of the tensor the same int8 code (the score + mask Add of MiniLM got a
# scale of 1.3e36: attention became uniform, cosine 0.36), so nodes that read or write such a tensor stay float.
MASK_SENTINEL = 1e30


def mask_nodes(model: onnx.ModelProto, table: Any) -> list[str]:
    """Nodes reading or writing a tensor whose calibrated range reaches +-MASK_SENTINEL (an additive mask)."""
    masked = {name for name, st in table.stats.items()
              if not st.empty and max(abs(st.min), abs(st.max)) >= MASK_SENTINEL}
    return sorted(n.name for n in model.graph.node if masked & (set(n.input) | set(n.output)))


def prepare_model(model: onnx.ModelProto, work_dir: Path) -> onnx.ModelProto:
    """The float model quantization starts from: opset >= 13, ONNX Runtime's pre-processing (shape inference,
    Conv+BatchNorm folding) and named nodes. Calibration and emission both use this model, so tensor names agree."""
    from onnxruntime.quantization import quant_pre_process

    proto = onnx.ModelProto()
    proto.CopyFrom(model)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        proto = onnx.version_converter.convert_version(proto, MIN_OPSET)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "prepared.onnx"
        save_onnx(proto, src)
        for skip_symbolic in (False, True):
            try:
                quant_pre_process(str(src), str(dst), skip_symbolic_shape=skip_symbolic)
                proto = onnx.load(str(dst))
                break
            except Exception as exc:  # noqa: BLE001 - pre-processing is an optimization; fall back step by step
                log.debug("quant_pre_process failed (skip_symbolic_shape=%s): %s", skip_symbolic, exc)
    name_nodes(proto)
    return proto


def _ort_types(spec: QdqSpec) -> tuple[object, object]:
    from onnxruntime.quantization import QuantType

    act = QuantType.QUInt8 if spec.activation_type == "uint8" else QuantType.QInt8
    wt = QuantType.QInt8 if spec.weight_type == "int8" else QuantType.QUInt8
    return act, wt


def emit_qdq(
    model: onnx.ModelProto, table: CalibrationTable, spec: QdqSpec = ORT_X86, work_dir: Path | None = None
) -> EmitResult:
    """Quantize a prepared float model with the table's ranges as `spec` says; returns the model (not saved)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, TensorsData, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    op_types = spec.op_types_to_quantize()
    needed = activation_tensors(model, op_types)
    missing = table.missing(needed)
    if missing:
        raise DataError(
            f"the calibration table has no ranges for {len(missing)} tensors of this model (e.g. '{missing[0]}')",
            "recalibrate on the model being quantized (its graph differs from the calibrated one)",
        )
    ranges = table.ranges(spec.method, percentile=spec.percentile, symmetric=spec.activation_symmetric)
    data = {k: (np.float32(lo), np.float32(hi)) for k, (lo, hi) in ranges.items()}
    masks = mask_nodes(model, table)
    excluded = set(spec.exclude_nodes) | set(masks)
    if spec.float_closure:
        excluded |= set(float_closure(model, {n.name for n in model.graph.node if n.op_type in COMPUTE_OPS and (
            n.name in excluded or n.op_type not in op_types)}))
    act, wt = _ort_types(spec)
    extra = {
        "ActivationSymmetric": spec.activation_symmetric,
        "WeightSymmetric": spec.weight_symmetric,
        "QuantizeBias": spec.quantize_bias,
        "DedicatedQDQPair": spec.dedicated_qdq_pair,
        "AddQDQPairToWeight": spec.weight_qdq_pair,
        "QDQKeepRemovableActivations": spec.keep_removable_activations,
        "QDQOpTypePerChannelSupportToAxis": dict(spec.per_channel_axes),
    }
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        src, dst, cache = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx", Path(tmp) / "ranges.json"
        save_onnx(model, src)
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), cache)
        quantize_static(
            str(src), str(dst), None,
            quant_format=QuantFormat.QDQ if spec.format == "qdq" else QuantFormat.QOperator,
            op_types_to_quantize=op_types, per_channel=spec.per_channel, reduce_range=spec.reduce_range,
            activation_type=act, weight_type=wt, nodes_to_exclude=sorted(excluded),
            calibrate_method=CalibrationMethod.MinMax, extra_options=extra, calibration_cache_path=str(cache),
        )
        out = onnx.load(str(dst))
    if spec.float_outputs and spec.format == "qdq":
        unquantize_outputs(out)
    protected = protect_float_nodes(out) if spec.format == "qdq" else []
    floats = float_compute_nodes(out)
    quantized = sorted({n.name for n in model.graph.node if n.op_type in COMPUTE_OPS} - set(floats))
    return EmitResult(out, spec, quantized, floats, protected, masks)


def float_compute_nodes(model: onnx.ModelProto) -> list[str]:
    """Compute nodes (Conv, ConvTranspose, Gemm, MatMul) that still run in float: weight not dequantized from int8."""
    producers = {o: n for n in model.graph.node for o in n.output}
    out = []
    for node in model.graph.node:
        if node.op_type not in COMPUTE_OPS or len(node.input) < 2:
            continue
        src = producers.get(node.input[1])
        if src is None or src.op_type != "DequantizeLinear":
            out.append(node.name)
    return sorted(out)


def unquantize_outputs(model: onnx.ModelProto, producers_ok: tuple[str, ...] = ("Gemm", "MatMul")) -> list[str]:
    """Drop the Q/DQ pair on graph outputs written by Gemm/MatMul: ONNX Runtime's QGemm and MatMulIntegerToFloat
    write float directly, so the pair only rounds the logits (it flips near-tied top-1 classes). Returns the outputs."""
    g = model.graph
    producers = {o: n for n in g.node for o in n.output}
    readers = collections.Counter(i for n in g.node for i in n.input)
    done: list[str] = []
    for out in g.output:
        dq = producers.get(out.name)
        q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        src = producers.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if src is None or src.op_type not in producers_ok or readers[q.output[0]] != 1 or readers[q.input[0]] != 1:
            continue
        src.output[list(src.output).index(q.input[0])] = out.name
        g.node.remove(q)
        g.node.remove(dq)
        done.append(out.name)
    if done:
        drop_unused_initializers(g)
    return done


def _scalar_initializer(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for init in graph.initializer:
        if init.name == name:
            value = numpy_helper.to_array(init)
            return value if value.size == 1 else None
    return None


def _single_path_to_q(node: onnx.NodeProto, consumers: dict[str, list[onnx.NodeProto]]) -> bool:
    """The output reaches a QuantizeLinear through nothing but single-consumer Relu/Clip nodes."""
    current = node
    for _ in range(64):
        if len(current.output) != 1 or len(consumers.get(current.output[0], [])) != 1:
            return False
        nxt = consumers[current.output[0]][0]
        if nxt.op_type == "QuantizeLinear":
            return True
        if nxt.op_type not in ("Relu", "Clip"):
            return False
        current = nxt
    return False


def _input_channels(graph: onnx.GraphProto, node: onnx.NodeProto) -> tuple[int, int] | None:
    """(axis, channel count) of input 0's channel dim, from the weight's shape; None when unknown."""
    w = next((i for i in graph.initializer if i.name == node.input[1]), None)
    if w is None or len(w.dims) < 2:
        return None
    attrs = {a.name: a.i for a in node.attribute}
    if node.op_type == "Conv":
        return 1, int(w.dims[1]) * int(attrs.get("group", 1))
    if node.op_type == "ConvTranspose":
        return 1, int(w.dims[0])
    trans_a, trans_b = int(attrs.get("transA", 0)), int(attrs.get("transB", 0))
    k = int(w.dims[1]) if trans_b else int(w.dims[0])
    return (0 if trans_a else 1), k


def protect_float_nodes(model: onnx.ModelProto) -> list[str]:
    """Keep float Conv/ConvTranspose/Gemm nodes really float; returns the names of the nodes rewritten.

    ONNX Runtime's WeightBiasQuantization optimizer (session creation) quantizes the float weights of such a node
    per-tensor when its input comes from a per-tensor DequantizeLinear and its output leads to a QuantizeLinear, which
    turns an excluded node into a per-tensor QLinearConv (measured: -6.6 top-1 on EfficientNet-Lite0 with its
    depthwise convs excluded). Feeding the node from a dedicated DequantizeLinear with the same scale repeated per
    channel computes the same values but no longer matches that pattern.
    """
    g = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = collections.defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
    producers = {o: n for n in g.node for o in n.output}
    float_inits = {i.name for i in g.initializer if i.data_type == onnx.TensorProto.FLOAT}
    outputs = {o.name for o in g.output}
    fixed: list[str] = []
    for node in list(g.node):
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm") or len(node.input) < 2:
            continue
        dq = producers.get(node.input[0])
        if node.input[1] not in float_inits or dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 2:
            continue
        scale = _scalar_initializer(g, dq.input[1])
        zp = _scalar_initializer(g, dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
        channels = _input_channels(g, node)
        if scale is None or channels is None or not _single_path_to_q(node, consumers):
            continue
        axis, count = channels
        base = f"{node.name or node.output[0]}_float_input"
        g.initializer.append(numpy_helper.from_array(np.full(count, scale.item(), scale.dtype), f"{base}_scale"))
        inputs = [dq.input[0], f"{base}_scale"]
        if zp is not None:
            g.initializer.append(numpy_helper.from_array(np.full(count, zp.item(), zp.dtype), f"{base}_zero_point"))
            inputs.append(f"{base}_zero_point")
        new = helper.make_node("DequantizeLinear", inputs, [f"{base}_dq"], name=f"{base}_DequantizeLinear", axis=axis)
        g.node.insert(list(g.node).index(node), new)
        old = node.input[0]
        node.input[0] = f"{base}_dq"
        consumers[old] = [c for c in consumers[old] if c is not node]
        if not consumers[old] and old not in outputs:  # the shared DQ has no reader left
            g.node.remove(dq)
        fixed.append(node.name)
    if fixed:
        drop_unused_initializers(g)
    return fixed
