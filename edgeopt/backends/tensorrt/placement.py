"""Where TensorRT wants Q/DQ nodes: one rules table, read by the qdq_tensorrt pass (to place) and the checker.

TensorRT builds an ONNX model with QuantizeLinear/DequantizeLinear nodes by "explicit quantization": it runs in INT8
exactly the layers whose inputs come through Q/DQ and fuses the Q/DQ into them. The placement that gives fast, fused
INT8 kernels (NVIDIA's TensorRT developer guide, "Q/DQ layer-placement recommendations", and the residual-connection
rule of NVIDIA's TensorFlow quantization toolkit):

| op | inputs through Q/DQ | stays float | weight scales |
|---|---|---|---|
| Conv | 0 (data), 1 (weight) | 2 (bias) | per channel, axis 0 |
| ConvTranspose | 0, 1 | 2 (bias) | per channel, axis 1 |
| Gemm | 0, 1 | 2 (C) | per channel, axis 0 with transB=1, else 1 |
| MatMul | 0, 1 | - | per channel on the last axis of a constant operand |
| Add with 2+ activation inputs (residual) | every input except one straight from an INT8 Conv (see below) | - | - |

Activations are quantized per tensor, everything is INT8 with zero point 0. A residual Add keeps its Conv branch float
so that TensorRT fuses Conv + Add (+ ReLU) into one INT8 kernel; quantizing that branch too splits the fusion. Where
every Conv feeding the Add is kept float on purpose (FP16 in the engine), no such fusion exists: the Add needs no Q/DQ,
and keeps one only on an input that an INT8 layer quantizes anyway. The same table is documented as rules (`RULES`)
that the checker reports by id, with the fix for each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_CONV_OPS = ("Conv", "ConvTranspose")


@dataclass(frozen=True)
class OpPlacement:
    """Q/DQ placement for one op type: which inputs go through Q/DQ, which stay float."""

    quantized: tuple[int, ...]
    float_inputs: tuple[int, ...]


PLACEMENT: dict[str, OpPlacement] = {
    "Conv": OpPlacement(quantized=(0, 1), float_inputs=(2,)),
    "ConvTranspose": OpPlacement(quantized=(0, 1), float_inputs=(2,)),
    "Gemm": OpPlacement(quantized=(0, 1), float_inputs=(2,)),
    "MatMul": OpPlacement(quantized=(0, 1), float_inputs=()),
}
RESIDUAL_OPS = ("Add",)


@dataclass(frozen=True)
class Rule:
    """One requirement of TensorRT explicit quantization: what it asks, why, and how to fix a model that breaks it."""

    id: str
    severity: Literal["error", "warning"]  # error: TensorRT refuses or mis-builds; warning: builds slower or less exact
    requirement: str
    why: str
    fix: str


_REEMIT = "edgeopt compile MODEL --target trt-gpu --calibration DATA re-emits it (pass qdq_tensorrt)"
RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("int8-type", "error", "Q/DQ quantize to INT8",
             "TensorRT's integer Q/DQ is signed INT8; its ONNX parser rejects UINT8 and INT16", _REEMIT),
        Rule("zero-point", "error", "every zero point is 0 (symmetric quantization)",
             "TensorRT implements symmetric quantization only and rejects a non-zero zero point",
             "re-emit it symmetric from the model's scales: " + _REEMIT),
        Rule("scale", "error", "scales are finite and > 0", "a zero or non-finite scale has no INT8 meaning", _REEMIT),
        Rule("qdq-pair", "error", "an activation QuantizeLinear feeds only DequantizeLinear nodes",
             "TensorRT fuses Q->DQ pairs into INT8 layers; an INT8 tensor read directly by another op is not built",
             _REEMIT),
        Rule("activation-per-tensor", "error", "activation Q/DQ use one scale (per tensor)",
             "TensorRT supports per-channel scales on weights only", _REEMIT),
        Rule("weight-axis", "error",
             "per-channel weight scales run along the output-channel axis (Conv 0, ConvTranspose 1, Gemm 0 with "
             "transB=1 else 1, MatMul the last axis)",
             "TensorRT quantizes weights per output channel only", _REEMIT),
        Rule("float-bias", "error", "biases (Conv/ConvTranspose input 2, Gemm input C) stay float, without a DQ",
             "TensorRT folds a float bias into the INT8 kernel and does not take an INT32 DequantizeLinear",
             "keep biases float: " + _REEMIT),
        Rule("weight-per-channel", "warning", "weights of Conv/ConvTranspose/Gemm/MatMul are quantized per channel",
             "one scale for all output channels loses accuracy where channel ranges differ; per channel costs "
             "nothing in TensorRT", _REEMIT),
        Rule("linear-inputs", "warning", "data and weight inputs of Conv/ConvTranspose/Gemm/MatMul come from a DQ",
             "TensorRT runs a layer in INT8 only when its inputs are quantized; otherwise in FP16/FP32",
             "insert Q/DQ on the input: " + _REEMIT),
        Rule("residual-add", "warning",
             "a residual Add has Q/DQ on every input except one coming straight from an INT8 Conv (an Add whose Conv "
             "branches are all kept float needs none)",
             "TensorRT fuses Conv + Add (+ReLU) into one INT8 kernel when the other input is INT8; a Q/DQ on the Conv "
             "branch splits the fusion, a float residual input keeps the fused output in float",
             "move the Q/DQ to the residual input: " + _REEMIT),
    )
}


@dataclass(frozen=True)
class Violation:
    """A broken rule at one node, with the fix."""

    node: str
    op_type: str
    rule: str
    detail: str

    @property
    def severity(self) -> str:
        return RULES[self.rule].severity

    @property
    def fix(self) -> str:
        return RULES[self.rule].fix

    def __str__(self) -> str:
        return f"[{self.severity} {self.rule}] {self.op_type} '{self.node}': {self.detail}; fix: {self.fix}"

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "op_type": self.op_type, "rule": self.rule, "severity": self.severity,
                "detail": self.detail, "fix": self.fix}


class GraphIndex:
    """Producers, consumers and constants of a graph, built once for lookups."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.inits = {i.name: i for i in graph.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for out in node.output:
                self.producer[out] = node
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in graph.output}

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant output, else None."""
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
        return None

    def is_constant(self, name: str) -> bool:
        """True for initializers, Constant outputs and DQ of a constant (a quantized weight)."""
        node = self.producer.get(name)
        if node is not None and node.op_type == "DequantizeLinear":
            return self.is_constant(node.input[0])
        return name in self.inits or (node is not None and node.op_type == "Constant")

    def dq_of(self, name: str) -> onnx.NodeProto | None:
        """The DequantizeLinear producing `name`, if any."""
        node = self.producer.get(name)
        return node if node is not None and node.op_type == "DequantizeLinear" else None

    def elem_type(self, name: str) -> int | None:
        """The element type of a constant tensor, or None."""
        if name in self.inits:
            return self.inits[name].data_type
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            return next((a.t.data_type for a in node.attribute if a.name == "value"), None)
        return None


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((int(onnx.helper.get_attribute_value(a)) for a in node.attribute if a.name == name), default)


def weight_input(node: onnx.NodeProto, index: GraphIndex) -> int | None:
    """Which input of a linear op is its weight (a constant): 1 for Conv/ConvTranspose/Gemm, the constant for MatMul."""
    if node.op_type in ("Conv", "ConvTranspose", "Gemm"):
        return 1 if len(node.input) > 1 and index.is_constant(node.input[1]) else None
    if node.op_type == "MatMul":
        for i in (1, 0):
            if index.is_constant(node.input[i]):
                return i
    return None


def weight_axis(node: onnx.NodeProto, input_index: int, rank: int) -> int | None:
    """The output-channel axis of a weight (per-channel scales run along it); None where only per-tensor fits."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        return 0 if _attr(node, "transB", 0) else 1
    if node.op_type == "MatMul" and input_index == 1 and rank >= 2:
        return rank - 1
    return None


def _conv_behind(name: str, index: GraphIndex) -> onnx.NodeProto | None:
    """The Conv/ConvTranspose whose output `name` is, read by nothing else (looking through a Q/DQ pair that another
    tool may have put there, itself read by this one reader); None otherwise."""
    src = name
    dq = index.dq_of(src)
    if dq is not None:
        q = index.producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or len(index.consumers.get(dq.input[0], [])) != 1 \
                or len(index.consumers.get(dq.output[0], [])) != 1:
            return None
        src = q.input[0]
    producer = index.producer.get(src)
    if producer is not None and producer.op_type in _CONV_OPS and len(index.consumers.get(src, [])) == 1 \
            and src not in index.outputs:
        return producer
    return None


def fused_conv_branch(node: onnx.NodeProto, index: GraphIndex, float_nodes: frozenset[str] = frozenset()) -> int | None:
    """The input of a residual Add that TensorRT fuses into its Conv: the first one produced by an INT8 Conv (not in
    `float_nodes`) that has no other consumer."""
    for i, name in enumerate(node.input):
        conv = _conv_behind(name, index)
        if conv is not None and conv.name not in float_nodes:
            return i
    return None


def residual_inputs(node: onnx.NodeProto, index: GraphIndex,
                    float_nodes: frozenset[str] = frozenset()) -> list[int] | None:
    """For an Add with two or more activation inputs, the inputs that go through Q/DQ; None for other nodes.

    When every Conv branch of the Add is kept float (`float_nodes`, FP16 in the engine), there is no INT8 Conv+Add
    fusion to feed: none of its inputs needs Q/DQ ([])."""
    if node.op_type not in RESIDUAL_OPS:
        return None
    live = [i for i, name in enumerate(node.input) if name and not index.is_constant(name)]
    if len(live) < 2:
        return None
    fused = fused_conv_branch(node, index, float_nodes)
    if fused is None and any(_conv_behind(node.input[i], index) is not None for i in live):
        return []
    return [i for i in live if i != fused]


@dataclass(frozen=True)
class Site:
    """One place to insert Q/DQ: tensor `tensor` as input `input_index` of node `node`."""

    node: str
    input_index: int
    tensor: str
    weight: bool
    axis: int | None  # per-channel axis for weights; None: per tensor


def qdq_sites(model: onnx.ModelProto, float_nodes: frozenset[str] = frozenset()) -> list[Site]:
    """Mark every input that gets Q/DQ by the table above, in graph order (the model must carry no Q/DQ yet);
    `float_nodes` (Conv/Gemm/... kept float) get none. A residual Add whose Conv branches are all float keeps Q/DQ
    only on inputs an INT8 layer quantizes anyway (so their producer still writes INT8 alone), none on the rest."""
    index = GraphIndex(model.graph)
    linear: list[list[Site] | None] = []  # per node: its weighted-op sites, None for other nodes
    for node in model.graph.node:
        spec = PLACEMENT.get(node.op_type)
        if spec is None or node.name in float_nodes:
            linear.append(None)
            continue
        w = weight_input(node, index)
        own: list[Site] = []
        for i in spec.quantized:
            if i >= len(node.input) or not node.input[i]:
                continue
            name = node.input[i]
            if i == w:
                value = index.constant(name)
                rank = value.ndim if value is not None else 0
                own.append(Site(node.name, i, name, True, weight_axis(node, i, rank)))
            elif not index.is_constant(name):
                own.append(Site(node.name, i, name, False, None))
        linear.append(own)
    quantized = {s.tensor for own in linear if own for s in own if not s.weight}
    sites: list[Site] = []
    for node, own in zip(model.graph.node, linear, strict=True):
        if own is not None:
            sites.extend(own)
            continue
        quantize = residual_inputs(node, index, float_nodes)
        if quantize == []:  # no INT8 Conv+Add fusion: keep only the Q/DQ an INT8 layer shares
            quantize = [i for i, name in enumerate(node.input) if name in quantized]
        sites.extend(Site(node.name, i, node.input[i], False, None) for i in quantize or [])
    return sites


def _qdq_type(node: onnx.NodeProto, index: GraphIndex) -> int | None:
    """The integer type a Q produces or a DQ reads (UINT8 for a Q without zero point, per the ONNX default)."""
    if node.op_type == "DequantizeLinear":
        t = index.elem_type(node.input[0])
        if t is not None:
            return t
        src = index.producer.get(node.input[0])
        if src is not None and src.op_type == "QuantizeLinear":
            return _qdq_type(src, index)
    if len(node.input) > 2 and node.input[2]:
        return index.elem_type(node.input[2])
    out_type = _attr(node, "output_dtype", 0)
    return out_type or TensorProto.UINT8


def _check_qdq(node: onnx.NodeProto, index: GraphIndex) -> list[Violation]:
    """Format rules on one Q (activation pair) or one DQ of a constant (a weight)."""
    found: list[Violation] = []
    name = node.name or node.output[0]
    vtype = _qdq_type(node, index)
    if vtype == TensorProto.INT32:
        return found  # an INT32 DQ is a quantized bias: reported by the float-bias rule at its consumer
    tensor = node.input[0]
    if vtype != TensorProto.INT8:
        type_name = TensorProto.DataType.Name(vtype) if vtype else "unknown"
        found.append(Violation(name, node.op_type, "int8-type", f"quantizes tensor '{tensor}' to {type_name}"))
    zp = index.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if zp is not None and np.any(zp != 0):
        shown = zp.ravel()[:4].tolist()
        found.append(Violation(name, node.op_type, "zero-point", f"zero point {shown} on tensor '{tensor}'"))
    scale = index.constant(node.input[1])
    if scale is not None and (not np.all(np.isfinite(scale)) or np.any(scale <= 0)):
        found.append(Violation(name, node.op_type, "scale", f"scale of tensor '{tensor}' is not finite and > 0"))
    if node.op_type == "QuantizeLinear" and not index.is_constant(tensor):
        if scale is not None and scale.size > 1:
            found.append(Violation(name, node.op_type, "activation-per-tensor",
                                   f"activation '{tensor}' has {scale.size} scales"))
        readers = index.consumers.get(node.output[0], [])
        others = sorted({n.op_type for n in readers if n.op_type != "DequantizeLinear"})
        if others or node.output[0] in index.outputs:
            found.append(Violation(name, node.op_type, "qdq-pair",
                                   f"INT8 output read by {', '.join(others) or 'the graph output'}"))
    return found


def _check_linear(node: onnx.NodeProto, spec: OpPlacement, index: GraphIndex) -> list[Violation]:
    """Placement rules around one Conv/ConvTranspose/Gemm/MatMul."""
    found: list[Violation] = []
    name = node.name or node.output[0]
    w = weight_input(node, index)
    for i in spec.quantized:
        if i >= len(node.input) or not node.input[i]:
            continue
        dq = index.dq_of(node.input[i])
        role = "weight" if i == w else "input"
        if dq is None:
            found.append(Violation(name, node.op_type, "linear-inputs",
                                   f"{role} {i} ('{node.input[i]}') is float, so the layer runs in float"))
            continue
        if i != w:
            continue
        scale = index.constant(dq.input[1])
        value = index.constant(dq.input[0])
        if scale is None or value is None:
            continue
        if scale.size == 1:
            found.append(Violation(name, node.op_type, "weight-per-channel",
                                   f"weight '{dq.input[0]}' has one scale for {value.shape[0]} channels"))
            continue
        axis = _attr(dq, "axis", 1)
        axis = axis + value.ndim if axis < 0 else axis
        want = weight_axis(node, i, value.ndim)
        if want is None or axis != want:
            found.append(Violation(name, node.op_type, "weight-axis",
                                   f"weight '{dq.input[0]}' is per-channel on axis {axis}, TensorRT needs {want}"))
    for i in spec.float_inputs:
        if i < len(node.input) and node.input[i] and index.dq_of(node.input[i]) is not None:
            found.append(Violation(name, node.op_type, "float-bias", f"bias '{node.input[i]}' goes through a DQ"))
    return found


def _check_residual(node: onnx.NodeProto, quantize: list[int], index: GraphIndex,
                    float_nodes: frozenset[str]) -> list[Violation]:
    """The residual-add rule: Q/DQ on every activation input but the fused Conv branch."""
    found: list[Violation] = []
    name = node.name or node.output[0]
    fused = fused_conv_branch(node, index, float_nodes)
    for i in quantize:
        if index.dq_of(node.input[i]) is None:
            found.append(Violation(name, node.op_type, "residual-add",
                                   f"input {i} ('{node.input[i]}') is float, so the fused Conv+Add stays in float"))
    if fused is not None and index.dq_of(node.input[fused]) is not None:
        found.append(Violation(name, node.op_type, "residual-add",
                               f"input {fused} comes from a Conv through Q/DQ, which blocks the Conv+Add fusion"))
    return found


def is_quantized(model: onnx.ModelProto) -> bool:
    """True when the model carries any QuantizeLinear/DequantizeLinear node."""
    return any(n.op_type in QDQ_OPS for n in model.graph.node)


def declared_float_nodes(model: onnx.ModelProto) -> frozenset[str]:
    """The compute nodes an edgeopt TensorRT build kept float on purpose (its quantization record's `float_nodes`)."""
    from edgeopt.quant.record import read_record

    record = read_record(model) or {}
    return frozenset(record.get("float_nodes") or []) if record.get("format") == "tensorrt" else frozenset()


def check_placement(model: onnx.ModelProto, float_nodes: frozenset[str] | None = None) -> list[Violation]:
    """Every rule a Q/DQ model breaks for TensorRT, in graph order; a float model (no Q/DQ) breaks none.

    `float_nodes`: Conv/Gemm/... nodes kept float on purpose (built in FP16), not reported as float inputs; default:
    those the model's own edgeopt record declares (`qdq_tensorrt` option `exclude_nodes`)."""
    if not is_quantized(model):
        return []
    intended = declared_float_nodes(model) if float_nodes is None else float_nodes
    index = GraphIndex(model.graph)
    found: list[Violation] = []
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" or (
            node.op_type == "DequantizeLinear" and index.producer.get(node.input[0], node).op_type != "QuantizeLinear"
        ):
            found.extend(_check_qdq(node, index))
        spec = PLACEMENT.get(node.op_type)
        if spec is not None:
            found.extend(v for v in _check_linear(node, spec, index)
                         if not (v.rule == "linear-inputs" and node.name in intended))
            continue
        quantize = residual_inputs(node, index, intended)
        if quantize is not None:
            found.extend(_check_residual(node, quantize, index, intended))
    return found


def summarize(violations: list[Violation]) -> dict[str, int]:
    """Counts of violations by severity."""
    return {
        "errors": sum(v.severity == "error" for v in violations),
        "warnings": sum(v.severity == "warning" for v in violations),
    }
