"""Lowering of QuantizeLinear/DequantizeLinear: constants fold into int8 weights, activations into int8 tensors."""

from __future__ import annotations

import numpy as np
import onnx

from edgeopt.backends.tflite.context import LoweringContext, Value, node_attrs
from edgeopt.backends.tflite.errors import unsupported_variant
from edgeopt.backends.tflite.layout import identity
from edgeopt.backends.tflite.quant import QConst, qparams_of, to_int8_values


def _broadcast_param(node: onnx.NodeProto, arr: np.ndarray, rank: int) -> np.ndarray:
    """A per-axis scale/zero point shaped to broadcast against a rank-`rank` tensor."""
    if arr.size <= 1:
        return arr.reshape(())
    axis = int(node_attrs(node).get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    shape = [1] * rank
    shape[axis] = -1
    return arr.reshape(shape)


def lower_quantize(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """QuantizeLinear: QUANTIZE a float tensor, requantize an int8 one, or fold away when the params already match."""
    x, out_name = node.input[0], node.output[0]
    v = ctx.value(x)
    rank = len(v.shape)
    if v.is_const:
        assert v.const is not None
        scale = _broadcast_param(node, ctx.const(node.input[1]).astype(np.float32), rank)
        zp_arr = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros((), np.uint8)
        info = np.iinfo(zp_arr.dtype)
        zp = _broadcast_param(node, zp_arr.astype(np.int64), rank)
        q = np.clip(np.rint(v.const.astype(np.float32) / scale) + zp, info.min, info.max).astype(zp_arr.dtype)
        ctx.alias(out_name, Value(out_name, v.shape, str(q.dtype), identity(rank), const=q))
        return
    params, _ = qparams_of(node, ctx.graph.constants, rank)
    if not params.per_tensor:
        raise unsupported_variant(node, "per-channel quantization of an activation")
    if v.quant == params:
        ctx.alias(out_name, v)
        return
    src = ctx.tensor(x) if v.quant is not None else ctx.float_tensor(x)
    _, out = ctx.new_value(out_name, v.perm, "int8", params)
    ctx.emit("QUANTIZE", [src], [out], ctx.opts("QuantizeOptions"))


def lower_dequantize(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """DequantizeLinear: a constant becomes float values plus its int8 form; an int8 activation is passed on."""
    x, out_name = node.input[0], node.output[0]
    v = ctx.value(x)
    rank = len(v.shape)
    if v.is_const:
        assert v.const is not None
        raw = v.const
        scale = _broadcast_param(node, ctx.const(node.input[1]).astype(np.float32), rank)
        has_zp = len(node.input) > 2 and node.input[2]
        zp = _broadcast_param(node, ctx.const(node.input[2]).astype(np.int64), rank) if has_zp else np.zeros(())
        values = ((raw.astype(np.int64) - zp).astype(np.float32) * scale).astype(np.float32)
        qconst = None
        if raw.dtype in (np.int8, np.uint8):
            params, kind = qparams_of(node, ctx.graph.constants, rank)
            qconst = QConst(to_int8_values(raw, kind), params)
        ctx.alias(out_name, Value(out_name, v.shape, "float32", identity(rank), const=values, qconst=qconst))
        return
    params, _ = qparams_of(node, ctx.graph.constants, rank)
    if v.quant is None or v.quant != params:
        raise unsupported_variant(node, "a DequantizeLinear whose parameters differ from its QuantizeLinear's")
    ctx.alias(out_name, v)
