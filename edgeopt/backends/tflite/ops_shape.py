"""Lowering of data-movement ops: Reshape family, Transpose (free), Concat, Split, Slice, Pad, Gather(ND), Expand,
Tile."""

from __future__ import annotations

import numpy as np
import onnx

from edgeopt.backends.tflite.context import LoweringContext, Value, node_attrs
from edgeopt.backends.tflite.errors import unsupported_variant
from edgeopt.backends.tflite.layout import Perm, after_transpose, drop_axes, identity, physical_shape, same_memory_order
from edgeopt.backends.tflite.ops_elementwise import _layout
from edgeopt.backends.tflite.quant import QParams


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _int_input(ctx: LoweringContext, node: onnx.NodeProto, index: int, attr: str) -> list[int] | None:
    """An integer list given as a constant input (newer opsets) or an attribute (older ones); None if absent."""
    if len(node.input) > index and node.input[index]:
        if not ctx.is_const(node.input[index]):
            raise unsupported_variant(node, f"a computed '{attr}' input")
        return [int(v) for v in np.asarray(ctx.const(node.input[index])).ravel()]
    value = node_attrs(node).get(attr)
    return [int(v) for v in value] if value is not None else None


def _new_like(ctx: LoweringContext, name: str, v: Value, perm: Perm, shape: tuple[int, ...] | None = None) -> int:
    """Output tensor with the dtype and int8 parameters of input value `v` (data movement keeps them)."""
    return ctx.new_value(name, perm, v.dtype, v.quant, shape)[1]


def lower_identity(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Identity/Dropout (inference): the output is the input."""
    ctx.alias(node.output[0], ctx.value(node.input[0]))


def lower_reshape(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Reshape, Flatten, Squeeze, Unsqueeze -> RESHAPE on data in ONNX memory order."""
    x = node.input[0]
    v = ctx.value(x)
    shape = ctx.graph.shape(node.output[0])
    ident = identity(len(v.shape))
    src = v.tensors[v.perm] if same_memory_order(v.shape, v.perm, ident) else ctx.tensor(x, ident)
    out = _new_like(ctx, node.output[0], v, identity(len(shape)))
    ctx.emit_reshape(src, out, shape)


def lower_transpose(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Transpose costs nothing: the output names the same data, with its layout recomputed."""
    v = ctx.value(node.input[0])
    rank = len(v.shape)
    t = tuple(node_attrs(node).get("perm", list(reversed(range(rank)))))
    shape = tuple(v.shape[i] for i in t)
    out = Value(node.output[0], shape, v.dtype, after_transpose(v.perm, t), quant=v.quant)
    out.tensors = {after_transpose(p, t): i for p, i in v.tensors.items()}
    out.float_tensors = {after_transpose(p, t): i for p, i in v.float_tensors.items()}
    ctx.alias(node.output[0], out)


def lower_concat(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Concat -> CONCATENATION along the axis's place in the common layout; int8 inputs share the output's params."""
    names = [n for n in node.input if n and int(np.prod(ctx.shape(n))) > 0]
    out_name = node.output[0]
    rank = len(ctx.shape(out_name))
    axis = _axis(int(node_attrs(node)["axis"]), rank)
    perm = _layout(ctx, names)
    values = [ctx.value(n) for n in names]
    opts = ctx.opts("ConcatenationOptions", axis=perm.index(axis))
    want = _common_int8(ctx, out_name, values)
    if want is not None:
        ins = []
        for n in names:
            t, p = ctx.int8_operand(n, perm)
            if p != want:
                moved = ctx.scratch(n + "_requant", physical_shape(ctx.shape(n), perm), "int8", want.spec())
                ctx.emit("QUANTIZE", [t], [moved], ctx.opts("QuantizeOptions"))
                t = moved
            ins.append(t)
        out = ctx.new_value(out_name, perm, "int8", want)[1]
        ctx.emit("CONCATENATION", ins, [out], opts)
        return
    dtype = ctx.graph.dtypes.get(out_name, "float32")
    ins = [ctx.float_tensor(n, perm) if dtype == "float32" else ctx.tensor(n, perm) for n in names]
    out = ctx.new_value(out_name, perm, dtype)[1]
    ctx.emit("CONCATENATION", ins, [out], opts)


def _common_int8(ctx: LoweringContext, out_name: str, values: list[Value]) -> QParams | None:
    """Int8 params for a data-movement output: the following Q's, or the inputs' when they all agree."""
    if not all(v.quant is not None or v.is_const for v in values) or all(v.is_const for v in values):
        return None
    q_out = ctx.quant_output(out_name)
    if q_out is not None:
        return q_out
    params = {v.quant for v in values if v.quant is not None}
    return params.pop() if len(params) == 1 and all(not v.is_const for v in values) else None


def lower_split(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Split -> SPLIT (equal parts) or SPLIT_V, in the input's layout."""
    x = node.input[0]
    v = ctx.value(x)
    axis = _axis(int(node_attrs(node).get("axis", 0)), len(v.shape))
    sizes = [ctx.graph.shape(o)[axis] for o in node.output]
    paxis = v.perm.index(axis)
    outs = [_new_like(ctx, o, v, v.perm) for o in node.output]
    axis_t = ctx.int32_const(np.asarray(paxis, np.int32), "split_axis")
    if len(set(sizes)) == 1:
        ctx.emit("SPLIT", [axis_t, ctx.tensor(x)], outs, ctx.opts("SplitOptions", numSplits=len(outs)))
    else:
        sizes_t = ctx.int32_const(sizes, "split_sizes")
        ctx.emit("SPLIT_V", [ctx.tensor(x), sizes_t, axis_t], outs, ctx.opts("SplitVOptions", numSplits=len(outs)))


def lower_slice(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Slice -> STRIDED_SLICE with begin/end/strides resolved at compile time and laid out like the data."""
    x = node.input[0]
    v = ctx.value(x)
    rank = len(v.shape)
    starts = _int_input(ctx, node, 1, "starts") or []
    ends = _int_input(ctx, node, 2, "ends") or []
    axes = _int_input(ctx, node, 3, "axes") or list(range(len(starts)))
    steps = _int_input(ctx, node, 4, "steps") or [1] * len(starts)
    begin, end, stride = [0] * rank, list(v.shape), [1] * rank
    end_mask = 0
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        a = _axis(a, rank)
        idx = range(v.shape[a])[slice(s, e, st)]
        if len(idx) == 0:
            raise unsupported_variant(node, "an empty slice")
        begin[a], stride[a] = idx[0], st
        end[a] = idx[-1] + (1 if st > 0 else -1)
        if end[a] < 0:
            end_mask |= 1 << v.perm.index(a)
    phys = [list(physical_shape(tuple(arr), v.perm)) for arr in (begin, end, stride)]
    ins = [ctx.tensor(x)] + [ctx.int32_const(arr, f"slice_{k}") for k, arr in zip(("begin", "end", "strides"), phys,
                                                                                   strict=True)]
    out = _new_like(ctx, node.output[0], v, v.perm)
    ctx.emit("STRIDED_SLICE", ins, [out], ctx.opts("StridedSliceOptions", endMask=end_mask))


def lower_pad(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Pad -> PAD / PADV2 (constant) or MIRROR_PAD (reflect), with the pads laid out like the data."""
    attrs = node_attrs(node)
    x = node.input[0]
    v = ctx.value(x)
    rank = len(v.shape)
    pads = _int_input(ctx, node, 1, "pads")
    if pads is None:
        raise unsupported_variant(node, "missing pads")
    axes = [_axis(a, rank) for a in (_int_input(ctx, node, 3, "axes") or list(range(rank)))]
    full = [[0, 0] for _ in range(rank)]
    for i, a in enumerate(axes):
        full[a] = [pads[i], pads[i + len(axes)]]
    if any(p < 0 for pair in full for p in pair):
        raise unsupported_variant(node, "negative pads (cropping)")
    paddings = ctx.int32_const(np.asarray([full[p] for p in v.perm]), "paddings")
    mode = attrs.get("mode", "constant")
    if len(node.input) > 2 and node.input[2]:
        value = float(np.asarray(ctx.const(node.input[2])).ravel()[0]) if ctx.is_const(node.input[2]) else None
        if value is None:
            raise unsupported_variant(node, "a computed pad value")
    else:
        value = float(attrs.get("value", 0.0))
    out = _new_like(ctx, node.output[0], v, v.perm)
    if mode == "reflect":
        ctx.emit("MIRROR_PAD", [ctx.tensor(x), paddings], [out],
                 ctx.opts("MirrorPadOptions", mode=ctx.s.MirrorPadMode.REFLECT))
    elif mode != "constant":
        raise unsupported_variant(node, f"mode '{mode}'", "use constant or reflect padding")
    elif value == 0.0:
        ctx.emit("PAD", [ctx.tensor(x), paddings], [out], ctx.opts("PadOptions"))
    else:
        if v.quant is not None:
            q = int(np.clip(round(value / v.quant.scale[0]) + v.quant.zero_point[0], -128, 127))
            cval = ctx.const_tensor(np.asarray([q], np.int8), "pad_value", "int8", v.quant.spec())
        else:
            cval = ctx.const_tensor(np.asarray([value], np.dtype(v.dtype)), "pad_value")
        ctx.emit("PADV2", [ctx.tensor(x), paddings, cval], [out], ctx.opts("PadV2Options"))


def lower_gather(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Gather -> GATHER; a scalar constant index on computed data keeps the data's layout."""
    data, indices = node.input[0], node.input[1]
    v = ctx.value(data)
    rank = len(v.shape)
    axis = _axis(int(node_attrs(node).get("axis", 0)), rank)
    out_name = node.output[0]
    if ctx.is_const(indices):
        idx = np.asarray(ctx.const(indices)).astype(np.int64)
        idx = np.where(idx < 0, idx + v.shape[axis], idx).astype(np.int32)
        idx_t = ctx.const_tensor(idx, indices + "_i32", "int32")
    else:
        idx_t = ctx.tensor(indices)
    if v.is_const:
        assert v.const is not None
        params = ctx.const_tensor(v.const.astype(np.float32) if v.const.dtype.kind == "f" else v.const, data,
                                  weight=True)
        out = ctx.new_value(out_name, identity(len(ctx.shape(out_name))), ctx.graph.dtypes.get(out_name, "float32"))[1]
        ctx.emit("GATHER", [params, idx_t], [out], ctx.opts("GatherOptions", axis=axis))
        return
    if ctx.is_const(indices) and np.asarray(ctx.const(indices)).ndim == 0:
        perm = drop_axes(v.perm, {axis})
        out = _new_like(ctx, out_name, v, perm)
        ctx.emit("GATHER", [ctx.tensor(data), idx_t], [out], ctx.opts("GatherOptions", axis=v.perm.index(axis)))
        return
    out = _new_like(ctx, out_name, v, identity(len(ctx.shape(out_name))))
    ctx.emit("GATHER", [ctx.tensor(data, identity(rank)), idx_t], [out], ctx.opts("GatherOptions", axis=axis))


def lower_gather_nd(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """GatherND (batch_dims 0) -> GATHER_ND on data in ONNX layout; constant indices are made non-negative int32."""
    if int(node_attrs(node).get("batch_dims", 0)) != 0:
        raise unsupported_variant(node, "batch_dims > 0", "export with batch_dims 0 (or fold the batch first)")
    data, indices = node.input[0], node.input[1]
    v = ctx.value(data)
    if ctx.is_const(indices):
        idx = np.asarray(ctx.const(indices)).astype(np.int64)
        dims = np.asarray(v.shape[: idx.shape[-1]], np.int64)
        idx_t = ctx.const_tensor(np.where(idx < 0, idx + dims, idx).astype(np.int32), indices + "_i32", "int32")
    else:
        idx_t = ctx.tensor(indices)  # computed indices must be non-negative: GATHER_ND does not wrap them
    out_name = node.output[0]
    perm = identity(len(ctx.shape(out_name)))
    if v.is_const:
        out = ctx.new_value(out_name, perm, ctx.graph.dtypes.get(out_name, "float32"))[1]
    else:
        out = _new_like(ctx, out_name, v, perm)
    ctx.emit("GATHER_ND", [ctx.tensor(data, identity(len(v.shape))), idx_t], [out], ctx.opts("GatherNdOptions"))


def lower_expand(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Expand -> BROADCAST_TO the output shape (laid out like the input)."""
    out_name = node.output[0]
    rank = len(ctx.shape(out_name))
    x = ctx.with_rank(node.input[0], rank)
    v = ctx.value(x)
    perm = v.perm if not v.is_const else identity(rank)
    shape = physical_shape(ctx.shape(out_name), perm)
    out = _new_like(ctx, out_name, v, perm)
    ctx.emit("BROADCAST_TO", [ctx.tensor(x, perm), ctx.int32_const(list(shape), "broadcast_shape")], [out])


def lower_tile(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Tile -> TILE with the repeats laid out like the data."""
    x = node.input[0]
    v = ctx.value(x)
    reps = _int_input(ctx, node, 1, "repeats")
    if reps is None:
        raise unsupported_variant(node, "missing repeats")
    out = _new_like(ctx, node.output[0], v, v.perm)
    ctx.emit("TILE", [ctx.tensor(x), ctx.int32_const([reps[p] for p in v.perm], "repeats")], [out])
