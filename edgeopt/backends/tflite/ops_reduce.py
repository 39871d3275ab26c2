"""Lowering of reductions and normalizations: Softmax, ReduceMean/Sum/Max/Min/L1/L2/SumSquare, LayerNormalization."""

from __future__ import annotations

import numpy as np
import onnx

from edgeopt.backends.tflite.context import LoweringContext, node_attrs
from edgeopt.backends.tflite.errors import unsupported_variant
from edgeopt.backends.tflite.layout import Perm, drop_axes, identity, physical_shape
from edgeopt.backends.tflite.ops_shape import _axis, _int_input
from edgeopt.backends.tflite.quant import QParams, int8_table_ok, rescale_ok

_SOFTMAX_INT8 = QParams((1 / 256,), (-128,))
_REDUCERS = {"ReduceMean": "MEAN", "ReduceSum": "SUM", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN"}
# Norm-like reductions: SUM between an elementwise op before (None: x * x) and one after (None: nothing).
_SUM_OF = {"ReduceL1": ("ABS", None), "ReduceL2": (None, "SQRT"), "ReduceSumSquare": (None, None)}


def _last_axis_layout(perm: Perm, axis: int) -> Perm:
    """`perm` if logical `axis` is already stored last, else the ONNX layout with `axis` moved to the end."""
    if perm[-1] == axis:
        return perm
    rank = len(perm)
    return identity(rank) if axis == rank - 1 else tuple(i for i in range(rank) if i != axis) + (axis,)


def lower_softmax(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Softmax/LogSoftmax -> SOFTMAX/LOG_SOFTMAX over the last stored dim (int8 Softmax in int8 models)."""
    x = node.input[0]
    v = ctx.value(x)
    rank = len(v.shape)
    default = -1 if ctx.graph.opset >= 13 else 1
    axis = _axis(int(node_attrs(node).get("axis", default)), rank)
    if ctx.graph.opset < 13 and any(d != 1 for d in v.shape[axis + 1 :]):
        raise unsupported_variant(node, "opset < 13 Softmax over several trailing dims", "export with opset >= 13")
    perm = _last_axis_layout(v.perm, axis)
    log = node.op_type == "LogSoftmax"
    op = "LOG_SOFTMAX" if log else "SOFTMAX"
    opts = ctx.opts("LogSoftmaxOptions") if log else ctx.opts("SoftmaxOptions", beta=1.0)
    out_name = node.output[0]
    q_out = ctx.quant_output(out_name) if v.quant is not None and not log else None
    if q_out is not None and v.quant is not None and not int8_table_ok(v.quant.scale[0]):
        q_out = None
    if q_out is not None:
        out = ctx.scratch(out_name + "_int8", physical_shape(v.shape, perm), "int8", _SOFTMAX_INT8.spec())
        ctx.emit(op, [ctx.tensor(x, perm)], [out], opts)
        ctx.set_int8(out_name, perm, out, _SOFTMAX_INT8, q_out)
        return
    _, out = ctx.new_value(out_name, perm)
    ctx.emit(op, [ctx.float_tensor(x, perm)], [out], opts)


def _reduce_axes(ctx: LoweringContext, node: onnx.NodeProto, rank: int) -> list[int]:
    axes = _int_input(ctx, node, 1, "axes")
    if not axes:
        if node_attrs(node).get("noop_with_empty_axes", 0):
            return []
        return list(range(rank))
    return sorted({_axis(a, rank) for a in axes})


def lower_reduce(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Reduce* -> MEAN/SUM/REDUCE_MAX/REDUCE_MIN over the axes' places in the input's layout."""
    x = node.input[0]
    v = ctx.value(x)
    rank = len(v.shape)
    axes = _reduce_axes(ctx, node, rank)
    out_name = node.output[0]
    if not axes:
        ctx.alias(out_name, v)
        return
    keep = bool(node_attrs(node).get("keepdims", 1))
    perm = v.perm if keep else drop_axes(v.perm, set(axes))
    op = _REDUCERS[node.op_type]
    axes_t = ctx.int32_const(sorted(v.perm.index(a) for a in axes), "reduce_axes")
    opts = ctx.opts("ReducerOptions", keepDims=keep)
    q_out = ctx.quant_output(out_name) if v.quant is not None else None
    if q_out is not None and v.quant is not None and not rescale_ok(v.quant.scale[0] / q_out.scale[0]):
        q_out = None
    if v.quant is not None and (q_out is not None or op in ("REDUCE_MAX", "REDUCE_MIN")):
        have = q_out if op in ("MEAN", "SUM") else v.quant
        assert have is not None
        out = ctx.scratch(out_name + "_int8", physical_shape(ctx.shape(out_name), perm), "int8", have.spec())
        ctx.emit(op, [ctx.tensor(x), axes_t], [out], opts)
        ctx.set_int8(out_name, perm, out, have, q_out or have)
        return
    _, out = ctx.new_value(out_name, perm)
    ctx.emit(op, [ctx.float_tensor(x), axes_t], [out], opts)


def lower_reduce_sum_of(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """ReduceL1 -> ABS, SUM; ReduceL2 -> MUL(x, x), SUM, SQRT; ReduceSumSquare -> MUL(x, x), SUM (float)."""
    x = node.input[0]
    v = ctx.value(x)
    axes = _reduce_axes(ctx, node, len(v.shape))
    if not axes:
        raise unsupported_variant(node, "empty axes with noop_with_empty_axes=1", "reduce over explicit axes")
    before, after = _SUM_OF[node.op_type]
    out_name = node.output[0]
    src = ctx.float_tensor(x)
    mapped = ctx.scratch(out_name + "_elementwise", physical_shape(v.shape, v.perm))
    if before is None:
        ctx.emit("MUL", [src, src], [mapped], ctx.opts("MulOptions"))
    else:
        ctx.emit(before, [src], [mapped])
    keep = bool(node_attrs(node).get("keepdims", 1))
    perm = v.perm if keep else drop_axes(v.perm, set(axes))
    out = ctx.new_value(out_name, perm)[1]
    total = out if after is None else ctx.scratch(out_name + "_sum", physical_shape(ctx.shape(out_name), perm))
    axes_t = ctx.int32_const(sorted(v.perm.index(a) for a in axes), "reduce_axes")
    ctx.emit("SUM", [mapped, axes_t], [total], ctx.opts("ReducerOptions", keepDims=keep))
    if after is not None:
        ctx.emit(after, [total], [out])


def lower_layer_norm(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """LayerNormalization -> MEAN, SQUARED_DIFFERENCE, MEAN, ADD eps, RSQRT, SUB, MUL, then scale and bias."""
    attrs = node_attrs(node)
    x = node.input[0]
    v = ctx.value(x)
    rank = len(v.shape)
    axis = _axis(int(attrs.get("axis", -1)), rank)
    if len(node.output) > 1 and any(node.output[1:]):
        raise unsupported_variant(node, "the Mean/InvStdDev outputs")
    axes = list(range(axis, rank))
    perm = v.perm
    shape = physical_shape(v.shape, perm)
    reduced = tuple(1 if perm[i] in axes else d for i, d in enumerate(shape))
    src = ctx.float_tensor(x)
    name = node.output[0]
    axes_t = ctx.int32_const(sorted(perm.index(a) for a in axes), "norm_axes")

    def tmp(tag: str, s: tuple[int, ...]) -> int:
        return ctx.scratch(f"{name}_{tag}", s)

    mean = tmp("mean", reduced)
    ctx.emit("MEAN", [src, axes_t], [mean], ctx.opts("ReducerOptions", keepDims=True))
    sq = tmp("sqdiff", shape)
    ctx.emit("SQUARED_DIFFERENCE", [src, mean], [sq])
    var = tmp("var", reduced)
    ctx.emit("MEAN", [sq, axes_t], [var], ctx.opts("ReducerOptions", keepDims=True))
    eps = ctx.const_tensor(np.asarray(float(attrs.get("epsilon", 1e-5)), np.float32), "epsilon")
    var_eps = tmp("var_eps", reduced)
    ctx.emit("ADD", [var, eps], [var_eps], ctx.opts("AddOptions"))
    inv = tmp("rstd", reduced)
    ctx.emit("RSQRT", [var_eps], [inv])
    centered = tmp("centered", shape)
    ctx.emit("SUB", [src, mean], [centered], ctx.opts("SubOptions"))
    params = [n for n in node.input[1:3] if n]
    normed = tmp("normed", shape) if params else ctx.new_value(name, perm)[1]
    ctx.emit("MUL", [centered, inv], [normed], ctx.opts("MulOptions"))
    for i, p in enumerate(params):
        if not ctx.is_const(p):
            raise unsupported_variant(node, "computed scale or bias")
        arr = ctx.const(p).astype(np.float32)
        full = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
        last = i == len(params) - 1
        out = ctx.new_value(name, perm)[1] if last else tmp("scaled", shape)
        kind, opts = ("MUL", ctx.opts("MulOptions")) if i == 0 else ("ADD", ctx.opts("AddOptions"))
        ctx.emit(kind, [normed, ctx.const_tensor(np.transpose(full, perm), p, weight=True)], [out], opts)
        normed = out


def lower_batch_norm(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """BatchNormalization (inference) -> MUL and ADD by per-channel constants folded from scale, bias, mean, var."""
    attrs = node_attrs(node)
    x = node.input[0]
    if not all(ctx.is_const(n) for n in node.input[1:5]) or (len(node.output) > 1 and any(node.output[1:])):
        raise unsupported_variant(node, "training mode or computed statistics")
    gamma, beta, mean, var = (ctx.const(n).astype(np.float64) for n in node.input[1:5])
    scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    shift = beta - mean * scale
    v = ctx.value(x)
    rank = len(v.shape)
    shape = (1, -1) + (1,) * (rank - 2)
    data = physical_shape(v.shape, v.perm)
    scale_t, shift_t = (
        ctx.const_tensor(np.transpose(c.astype(np.float32).reshape(shape), v.perm), f"{name}_bn_{tag}", weight=True)
        for c, tag, name in ((scale, "scale", node.input[1]), (shift, "shift", node.input[2]))
    )
    scaled = ctx.scratch(node.output[0] + "_scaled", data)
    ctx.emit("MUL", [ctx.float_tensor(x), scale_t], [scaled], ctx.opts("MulOptions"))
    _, out = ctx.new_value(node.output[0], v.perm)
    ctx.emit("ADD", [scaled, shift_t], [out], ctx.opts("AddOptions"))
