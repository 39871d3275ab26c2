"""Lowering of matrix products: Gemm and MatMul -> FULLY_CONNECTED (constant weights) or BATCH_MATMUL."""

from __future__ import annotations

import numpy as np
import onnx

from edgeopt.backends.tflite.context import LoweringContext, node_attrs
from edgeopt.backends.tflite.errors import unsupported_variant
from edgeopt.backends.tflite.fusion import fused_activation
from edgeopt.backends.tflite.layout import Perm, identity
from edgeopt.backends.tflite.quant import (
    QConst,
    QParams,
    int8_product_ok,
    int8_weights,
    int32_bias,
    quantize_symmetric,
)


def _transposed(qc: QConst | None) -> QConst | None:
    """A 2-D quantized constant transposed ([K, N] -> [N, K]), its channel axis moved along."""
    if qc is None:
        return None
    p = qc.params
    axis = None if p.axis is None else 1 - p.axis
    return QConst(qc.values.T, QParams(p.scale, p.zero_point, axis))


def fully_connected(
    ctx: LoweringContext, node: onnx.NodeProto, x: str, x_perm: Perm, weights: np.ndarray, qconst: QConst | None,
    bias: np.ndarray | None, keep_num_dims: bool, output: str | None = None,
) -> None:
    """FULLY_CONNECTED y = x @ weights.T + bias, weights [N, K]; int8 when input and output are quantized."""
    out_name, act = fused_activation(ctx, output or node.output[0])
    xv = ctx.value(x)
    q_out = ctx.quant_output(out_name) if xv.quant is not None else None
    if q_out is not None and xv.quant is not None:
        wq, wp = int8_weights(weights, qconst, 0)
        if not int8_product_ok(xv.quant.scale[0], wp.scale, q_out.scale[0]):
            q_out = None
    rank = len(ctx.shape(out_name))
    opts = ctx.opts("FullyConnectedOptions", fusedActivationFunction=ctx.activation(act), keepNumDims=keep_num_dims)
    wname = node.input[1] + "_fc"
    if q_out is not None:
        assert xv.quant is not None
        filt = ctx.const_tensor(wq, wname, "int8", wp.spec())
        bias_t = -1
        if bias is not None:
            bq, bp = int32_bias(bias, xv.quant.scale[0], wp.scale)
            bias_t = ctx.const_tensor(bq, wname + "_bias", "int32", bp.spec())
        out = ctx.scratch(out_name + "_int8", ctx.shape(out_name), "int8", q_out.spec())
        ctx.emit("FULLY_CONNECTED", [ctx.tensor(x, x_perm), filt, bias_t], [out], opts)
        ctx.set_int8(out_name, identity(rank), out, q_out, q_out)
        return
    if qconst is not None and all(z == 0 for z in qconst.params.zero_point):
        # Weights quantized by the Q/DQ model but a float product here (e.g. float logits, whose output Q/DQ was
        # dropped): keep the model's int8 weights as a dynamic-range FULLY_CONNECTED instead of storing float32.
        wq, wp = int8_weights(weights, qconst, 0)
        filt = ctx.const_tensor(wq, wname, "int8", wp.spec())
        opts.asymmetricQuantizeInputs = True
    elif ctx.options.precision == "dynamic_int8" and weights.size >= ctx.options.min_weight_elements:
        wq, wp = quantize_symmetric(weights, 0)
        filt = ctx.const_tensor(wq, wname, "int8", wp.spec())
        opts.asymmetricQuantizeInputs = True
    else:
        filt = ctx.const_tensor(weights.astype(np.float32), wname, weight=True)
    bias_t = ctx.const_tensor(bias.astype(np.float32), wname + "_bias", weight=True) if bias is not None else -1
    _, out = ctx.new_value(out_name, identity(rank))
    ctx.emit("FULLY_CONNECTED", [ctx.float_tensor(x, x_perm), filt, bias_t], [out], opts)


def lower_gemm(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Gemm with a constant B -> FULLY_CONNECTED (alpha folded into the weights, beta*C into the bias)."""
    attrs = node_attrs(node)
    a, b = node.input[0], node.input[1]
    c = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if not ctx.is_const(b) or (c is not None and not ctx.is_const(c)):
        raise unsupported_variant(node, "a computed B or C operand")
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    wb = ctx.const(b).astype(np.float32)
    qc = ctx.value(b).qconst
    weights, qconst = (wb, qc) if attrs.get("transB", 0) else (wb.T, _transposed(qc))
    if alpha != 1.0:
        weights, qconst = weights * np.float32(alpha), None
    n = weights.shape[0]
    bias = None
    if c is not None:
        cv = ctx.const(c).astype(np.float32) * np.float32(beta)
        if cv.size not in (1, n) or (cv.ndim == 2 and cv.shape[0] != 1):
            raise unsupported_variant(node, f"a C operand of shape {list(cv.shape)} (only a [N] bias)")
        bias = np.broadcast_to(cv.ravel(), (n,)).astype(np.float32)
    perm = (1, 0) if attrs.get("transA", 0) else (0, 1)
    fully_connected(ctx, node, a, perm, weights, qconst, bias, keep_num_dims=False)


def _following_bias(ctx: LoweringContext, name: str, n: int) -> tuple[np.ndarray | None, str | None]:
    """A float Add of a constant [N] vector right after MatMul becomes the FULLY_CONNECTED bias (node absorbed)."""
    users = ctx.graph.consumers.get(name, [])
    if ctx.quantized or len(users) != 1 or users[0].op_type != "Add" or name in ctx.graph.outputs:
        return None, None
    add = users[0]
    other = add.input[1] if add.input[0] == name else add.input[0]
    if other == name or not ctx.is_const(other):
        return None, None
    c = ctx.const(other)
    if c.size != n or c.ndim == 0 or c.shape[-1] != n or c.ndim > len(ctx.shape(name)) or c.dtype.kind != "f":
        return None, None
    ctx.done.add(id(add))
    return c.astype(np.float32).ravel(), add.output[0]


def _matmul_operand(ctx: LoweringContext, name: str, rank: int, int8: bool) -> tuple[int, bool]:
    """(tensor, adjoint): data already stored with its last two dims swapped is used as is, with adj set."""
    name = ctx.with_rank(name, rank)
    v = ctx.value(name)
    swapped = identity(rank)[:-2] + (rank - 1, rank - 2)
    if not v.is_const and v.perm == swapped:
        return (ctx.tensor(name, swapped) if int8 else ctx.float_tensor(name, swapped)), True
    if int8:
        return ctx.int8_operand(name, identity(rank))[0], False
    return ctx.float_tensor(name, identity(rank)), False


def lower_matmul(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """MatMul: constant 2-D B -> FULLY_CONNECTED (keep_num_dims); otherwise BATCH_MATMUL."""
    a, b = node.input[0], node.input[1]
    ra, rb = len(ctx.shape(a)), len(ctx.shape(b))
    if ra < 2 or rb < 2:
        raise unsupported_variant(node, "a 1-D operand")
    if ctx.is_const(b) and rb == 2 and not ctx.is_const(a):
        wb = ctx.const(b).astype(np.float32)
        bias, output = _following_bias(ctx, node.output[0], wb.shape[1])
        fully_connected(ctx, node, a, identity(ra), wb.T, _transposed(ctx.value(b).qconst), bias, ra > 2, output)
        return
    out_name = node.output[0]
    rank = len(ctx.shape(out_name))
    va, vb = ctx.value(a), ctx.value(b)
    quantized = all(v.quant is not None or v.is_const for v in (va, vb)) and not (va.is_const and vb.is_const)
    q_out = ctx.quant_output(out_name) if quantized else None
    pa, pb = ctx.int8_params(a), ctx.int8_params(b)
    if q_out is not None and pa is not None and pb is not None:
        q_out = q_out if int8_product_ok(pa.scale[0], pb.scale, q_out.scale[0]) else None
    ta, adj_x = _matmul_operand(ctx, a, rank, q_out is not None)
    tb, adj_y = _matmul_operand(ctx, b, rank, q_out is not None)
    opts = ctx.opts("BatchMatMulOptions", adjX=adj_x, adjY=adj_y)
    if q_out is not None:
        out = ctx.scratch(out_name + "_int8", ctx.shape(out_name), "int8", q_out.spec())
        ctx.emit("BATCH_MATMUL", [ta, tb], [out], opts)
        ctx.set_int8(out_name, identity(rank), out, q_out, q_out)
        return
    _, out = ctx.new_value(out_name, identity(rank))
    ctx.emit("BATCH_MATMUL", [ta, tb], [out], opts)
