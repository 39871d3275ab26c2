"""ONNX -> TFLite: check coverage, prepare the graph, lower every node through the op table, write the flatbuffer."""

from __future__ import annotations

from collections import Counter
from typing import Any

import onnx

from edgeopt.backends.tflite.context import ConvertOptions, LoweringContext
from edgeopt.backends.tflite.errors import UnsupportedOpError
from edgeopt.backends.tflite.graph import OnnxGraph, prepare
from edgeopt.backends.tflite.layout import NHWC, identity
from edgeopt.backends.tflite.op_table import SUPPORTED_OPS, unsupported_nodes
from edgeopt.backends.tflite.patterns import fuse_gelu
from edgeopt.backends.tflite.quant import QParams, qparams_of
from edgeopt.errors import ConfigError

_QDQ = ("QuantizeLinear", "DequantizeLinear")
_MAX_LISTED_NODES = 5


def supported_list() -> str:
    """The supported ONNX ops, as named in error messages."""
    return ", ".join(SUPPORTED_OPS)


def check_supported(nodes: list[onnx.NodeProto]) -> None:
    """Raise one UnsupportedOpError naming every unsupported op type, its nodes, and the supported list."""
    missing = unsupported_nodes(nodes)
    if not missing:
        return
    by_op: dict[str, list[str]] = {}
    for op, name in missing:
        by_op.setdefault(op, []).append(name)
    parts = []
    for op, names in sorted(by_op.items()):
        shown = ", ".join(f"'{n}'" for n in names[:_MAX_LISTED_NODES])
        more = f" and {len(names) - _MAX_LISTED_NODES} more" if len(names) > _MAX_LISTED_NODES else ""
        parts.append(f"{op} (node {shown}{more})")
    raise UnsupportedOpError(
        "the TFLite backend cannot lower " + "; ".join(parts),
        f"rewrite or remove these ops, or pick another target; supported ONNX ops: {supported_list()}",
        missing,
    )


def _check_precision(graph: OnnxGraph, options: ConvertOptions) -> None:
    has_qdq = any(n.op_type in _QDQ for n in graph.nodes)
    if options.precision == "int8" and not has_qdq:
        raise ConfigError(
            "precision int8 needs a quantized (QuantizeLinear/DequantizeLinear) ONNX model, and this one has none",
            "run edgeopt's quantize pass (with calibration data) before to_tflite, or use precision dynamic_int8",
        )
    if has_qdq and options.precision != "int8":
        raise ConfigError(
            f"the model has QuantizeLinear/DequantizeLinear nodes but precision is {options.precision}",
            "use precision int8 for a quantized model",
        )
    if options.io_dtype == "int8" and options.precision != "int8":
        raise ConfigError("io_dtype int8 needs precision int8", "use io_dtype float32")


def _input_quant(ctx: LoweringContext, name: str) -> QParams:
    """Params of the QuantizeLinear nodes that every consumer of float input `name` must be (int8 model I/O)."""
    users = ctx.graph.consumers.get(name, [])
    params = {qparams_of(u, ctx.graph.constants, len(ctx.graph.shape(name)))[0] for u in users
              if u.op_type == "QuantizeLinear"}
    if not users or len(params) != 1 or any(u.op_type != "QuantizeLinear" for u in users):
        raise ConfigError(
            f"io_dtype int8: input '{name}' does not go straight into one QuantizeLinear",
            "use io_dtype float32 (QUANTIZE runs inside the model)",
        )
    return params.pop()


def _io_perm(options: ConvertOptions, rank: int) -> tuple[int, ...]:
    return NHWC if options.io_layout == "nhwc" and rank == 4 else identity(rank)


def convert(proto: onnx.ModelProto, options: ConvertOptions) -> bytes:
    """Lower an ONNX model to TFLite flatbuffer bytes (deterministic); raises before producing anything on error."""
    # Custom-domain ops can never be lowered (nor shape-inferred): report them before anything else.
    check_supported([n for n in proto.graph.node if n.domain not in ("", "ai.onnx")])
    graph = prepare(proto, options.batch, {k: list(v) for k, v in options.input_shapes})
    check_supported(graph.nodes)
    _check_precision(graph, options)
    fuse_gelu(graph)
    ctx = LoweringContext(graph, options)
    io_meta: dict[str, Any] = {"inputs": [], "outputs": []}
    inputs = []
    for name in graph.inputs:
        shape, dtype = graph.shapes[name], graph.dtypes[name]
        perm = _io_perm(options, len(shape))
        quant = None
        if options.io_dtype == "int8" and dtype == "float32":
            quant, dtype = _input_quant(ctx, name), "int8"
        _, idx = ctx.new_value(name, perm, dtype, quant, shape)
        ctx.writer.rename(idx, name)
        inputs.append(idx)
        io_meta["inputs"].append({"name": name, "shape": list(shape), "perm": list(perm)})
    for node in graph.nodes:
        if id(node) not in ctx.done:
            SUPPORTED_OPS[node.op_type].lower(ctx, node)
    outputs: list[int] = []
    for name in graph.outputs:
        v = ctx.value(name)
        if v.is_const:
            raise ConfigError(f"output '{name}' is a constant", "remove constant outputs from the model")
        perm = _io_perm(options, len(v.shape))
        keep_int8 = options.io_dtype == "int8" and v.quant is not None
        as_is = keep_int8 or v.dtype not in ("float32", "int8")
        idx = ctx.tensor(name, perm) if as_is else ctx.float_tensor(name, perm)
        if idx in inputs or idx in outputs:
            copy = ctx.scratch(name, ctx.writer.tensor_shape(idx), v.dtype if keep_int8 else "float32")
            ctx.emit_reshape(idx, copy, ctx.writer.tensor_shape(idx))
            idx = copy
        ctx.writer.rename(idx, name)
        outputs.append(idx)
        io_meta["outputs"].append({"name": name, "shape": list(v.shape), "perm": list(perm)})
    meta = {"producer": "edgeopt", "precision": options.precision, "io_layout": options.io_layout,
            "io_dtype": options.io_dtype, **io_meta}
    # edgeopt's entries of the ONNX source (the quantization record and calibration ranges of a Q/DQ model) travel
    # with the .tflite, so its report row and calibration sidecar say what the ORT build's do.
    source = {p.key: p.value for p in proto.metadata_props if p.key.startswith("edgeopt.")}
    if source:
        meta["source_metadata"] = dict(sorted(source.items()))
    return ctx.writer.serialize(inputs, outputs, meta)


def coverage(proto: onnx.ModelProto, options: ConvertOptions | None = None) -> dict[str, Any]:
    """Which ops of a model the TFLite lowering covers (after static-shape folding when shapes allow it)."""
    options = options or ConvertOptions()
    nodes = list(proto.graph.node)
    note = "after constant folding with static shapes"
    try:
        nodes = prepare(proto, options.batch, {k: list(v) for k, v in options.input_shapes}).nodes
    except ConfigError as exc:
        note = f"before folding (static shapes unknown: {exc.problem})"
    missing = unsupported_nodes(nodes)
    counts = Counter(n.op_type for n in nodes)
    supported = {op: c for op, c in sorted(counts.items()) if op in SUPPORTED_OPS}
    unsupported: dict[str, list[str]] = {}
    for op, name in missing:
        unsupported.setdefault(op, []).append(name)
    total = sum(counts.values())
    covered = total - len(missing)
    return {
        "convertible": not missing,
        "supported_ops": supported,
        "unsupported_ops": unsupported,
        "nodes_covered": f"{covered}/{total}",
        "int8_kernels": sorted(op for op in supported if SUPPORTED_OPS[op].int8),
        "note": note,
    }
