"""Lowering of convolutions and pooling: Conv (incl. depthwise and grouped), MaxPool, AveragePool, GlobalAveragePool."""

from __future__ import annotations

import math

import numpy as np
import onnx

from edgeopt.backends.tflite.context import LoweringContext, node_attrs
from edgeopt.backends.tflite.errors import unsupported_variant
from edgeopt.backends.tflite.fusion import fused_activation, non_negative
from edgeopt.backends.tflite.layout import NHWC, physical_shape
from edgeopt.backends.tflite.quant import (
    QParams,
    int8_product_ok,
    int8_weights,
    int32_bias,
    quantize_symmetric,
    rescale_ok,
)


def _pads(node: onnx.NodeProto, attrs: dict, in_hw: tuple[int, ...], k: tuple[int, ...], s: tuple[int, ...],
          d: tuple[int, ...]) -> list[int]:
    """ONNX pads [top, left, bottom, right], resolving auto_pad."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for i in range(2):
            out = math.ceil(in_hw[i] / s[i])
            total = max((out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i], 0)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + 2] = (small, big) if auto == "SAME_UPPER" else (big, small)
        return pads
    if auto == "VALID":
        return [0, 0, 0, 0]
    if auto != "NOTSET":
        raise unsupported_variant(node, f"auto_pad={auto}")
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4:
        raise unsupported_variant(node, "a non-2D spatial shape")
    return pads


def _same_pads(in_hw: tuple[int, ...], k: tuple[int, ...], s: tuple[int, ...], d: tuple[int, ...]) -> list[int]:
    pads = [0, 0, 0, 0]
    for i in range(2):
        out = math.ceil(in_hw[i] / s[i])
        total = max((out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i], 0)
        pads[i], pads[i + 2] = total // 2, total - total // 2
    return pads


def _padding_mode(
    pads: list[int], in_hw: tuple[int, ...], out_hw: tuple[int, ...], k: tuple[int, ...], s: tuple[int, ...],
    d: tuple[int, ...],
) -> tuple[str, list[int]]:
    """'SAME' or 'VALID' plus the explicit pads still needed before a VALID op ([0]*4 when none)."""
    same_out = tuple(math.ceil(in_hw[i] / s[i]) for i in range(2))
    if pads == _same_pads(in_hw, k, s, d) and out_hw == same_out and any(pads):
        return "SAME", [0, 0, 0, 0]
    pads = list(pads)
    for i in range(2):  # ceil_mode (pooling) can need more padding at the end than declared
        needed = (out_hw[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - (in_hw[i] + pads[i] + pads[i + 2])
        pads[i + 2] += max(0, needed)
    return "VALID", pads


def _explicit_pad(ctx: LoweringContext, name: str, src: int, pads: list[int], value: float | None,
                  quant: QParams | None) -> int:
    """PAD (zeros, or the int8 zero point) or PADV2 (a given value) on NHWC data."""
    shape = list(physical_shape(ctx.shape(name), NHWC))
    shape[1] += pads[0] + pads[2]
    shape[2] += pads[1] + pads[3]
    dtype = "int8" if quant is not None else "float32"
    out = ctx.scratch(name + "_padded", tuple(shape), dtype, quant.spec() if quant else None)
    paddings = ctx.int32_const(np.asarray([[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]]), "paddings")
    if value is None:
        ctx.emit("PAD", [src, paddings], [out], ctx.opts("PadOptions"))
    else:
        spec = quant.spec() if quant else None
        cval = ctx.const_tensor(np.asarray([value], np.dtype(dtype)), "pad_value", dtype, spec)
        ctx.emit("PADV2", [src, paddings, cval], [out], ctx.opts("PadV2Options"))
    return out


def _spatial(attrs: dict, key: str, default: int) -> tuple[int, int]:
    v = list(attrs.get(key, [default, default]))
    return int(v[0]), int(v[1])


def lower_conv(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Conv -> CONV_2D (OHWI filter) or DEPTHWISE_CONV_2D, in float, fp16, dynamic int8 or int8."""
    attrs = node_attrs(node)
    x, w = node.input[0], node.input[1]
    b = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if not ctx.is_const(w) or (b is not None and not ctx.is_const(b)):
        raise unsupported_variant(node, "a computed (non-constant) weight or bias")
    xs = ctx.shape(x)
    if len(xs) != 4:
        raise unsupported_variant(node, f"a {len(xs) - 2}-D convolution (only 2-D)")
    weights = ctx.const(w).astype(np.float32)
    n_out, per_group, kh, kw = weights.shape
    group = int(attrs.get("group", 1))
    s, d = _spatial(attrs, "strides", 1), _spatial(attrs, "dilations", 1)
    out_name, act = fused_activation(ctx, node.output[0])
    out_hw = ctx.shape(out_name)[2:]
    mode, pads = _padding_mode(_pads(node, attrs, xs[2:], (kh, kw), s, d), xs[2:], out_hw, (kh, kw), s, d)
    depthwise = group > 1 and group == xs[1] and per_group == 1
    if group > 1 and not depthwise and xs[1] != group * per_group:
        raise unsupported_variant(node, "a group count that does not divide the channels")
    bias = ctx.const(b).astype(np.float32) if b is not None else np.zeros(n_out, np.float32)
    xv = ctx.value(x)
    q_out = ctx.quant_output(out_name) if xv.quant is not None else None
    if q_out is not None and xv.quant is not None:
        wq, wp = int8_weights(weights, ctx.value(w).qconst, 0)
        if not int8_product_ok(xv.quant.scale[0], wp.scale, q_out.scale[0]):
            q_out = None  # scales TFLite cannot rescale between: this conv runs in float
    src = ctx.tensor(x, NHWC) if q_out is not None else ctx.float_tensor(x, NHWC)
    if any(pads):
        src = _explicit_pad(ctx, x, src, pads, None, xv.quant if q_out is not None else None)
    # Filter layout: OHWI for CONV_2D, 1HWO for DEPTHWISE_CONV_2D; the quantized axis is O in both.
    perm, axis = ((1, 2, 3, 0), 3) if depthwise else ((0, 2, 3, 1), 0)
    wname = w + "_filter"
    if q_out is not None:
        assert xv.quant is not None
        filt = ctx.const_tensor(np.transpose(wq, perm), wname, "int8", wp.spec(perm))
        bq, bp = int32_bias(bias, xv.quant.scale[0], wp.scale)
        bias_t = ctx.const_tensor(bq, (b or w) + "_bias", "int32", bp.spec())
        out_perm, produced = NHWC, ctx.scratch(out_name + "_int8", physical_shape(ctx.shape(out_name), NHWC), "int8",
                                               q_out.spec())
    else:
        if ctx.options.precision == "dynamic_int8" and weights.size >= ctx.options.min_weight_elements:
            wq, wp = quantize_symmetric(weights, 0)
            filt = ctx.const_tensor(np.transpose(wq, perm), wname, "int8", wp.spec(perm))
        else:
            filt = ctx.const_tensor(np.transpose(weights, perm), wname, weight=True)
        bias_t = ctx.const_tensor(bias, (b or w) + "_bias", weight=True)
        out_perm = NHWC
        _, produced = ctx.new_value(out_name, out_perm)
    common = dict(padding=getattr(ctx.s.Padding, mode), strideH=s[0], strideW=s[1], dilationHFactor=d[0],
                  dilationWFactor=d[1], fusedActivationFunction=ctx.activation(act))
    if depthwise:
        opts = ctx.opts("DepthwiseConv2DOptions", depthMultiplier=n_out // xs[1], **common)
        ctx.emit("DEPTHWISE_CONV_2D", [src, filt, bias_t], [produced], opts)
    else:
        ctx.emit("CONV_2D", [src, filt, bias_t], [produced], ctx.opts("Conv2DOptions", **common))
    if q_out is not None:
        ctx.set_int8(out_name, out_perm, produced, q_out, q_out)


def lower_pool(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """MaxPool/AveragePool -> MAX_POOL_2D/AVERAGE_POOL_2D (explicit pads by PAD/PADV2 when not SAME)."""
    attrs = node_attrs(node)
    x = node.input[0]
    xs = ctx.shape(x)
    if len(xs) != 4 or len(node.output) > 1 and node.output[1]:
        raise unsupported_variant(node, "a non-2D pool or a MaxPool indices output")
    k = _spatial(attrs, "kernel_shape", 1)
    s, d = _spatial(attrs, "strides", 1), _spatial(attrs, "dilations", 1)
    if d != (1, 1):
        raise unsupported_variant(node, "dilated pooling")
    out_name, act = fused_activation(ctx, node.output[0])
    out_hw = ctx.shape(out_name)[2:]
    is_max = node.op_type == "MaxPool"
    mode, pads = _padding_mode(_pads(node, attrs, xs[2:], k, s, d), xs[2:], out_hw, k, s, d)
    if not is_max and any(pads) and not attrs.get("count_include_pad", 0):
        raise unsupported_variant(node, "AveragePool with padding other than SAME and count_include_pad=0")
    xv = ctx.value(x)
    int8 = xv.quant is not None and (is_max or ctx.quant_output(out_name) is not None)
    src = ctx.tensor(x, NHWC) if int8 else ctx.float_tensor(x, NHWC)
    if any(pads):
        # Max pooling pads with -inf, which needs PADV2 (XNNPACK does not take it: the graph splits around a
        # single-threaded kernel). PAD's zeros (int8: the zero point) are as good when nothing is below them.
        floor_pad = int8 and xv.quant is not None and xv.quant.per_tensor and xv.quant.zero_point[0] == -128
        low = None
        if is_max and not (floor_pad or non_negative(ctx, x)):
            low = -128 if int8 else float(np.finfo(np.float32).min)
        src = _explicit_pad(ctx, x, src, pads, low, xv.quant if int8 else None)
    opts = ctx.opts("Pool2DOptions", padding=getattr(ctx.s.Padding, mode), strideH=s[0], strideW=s[1],
                       filterHeight=k[0], filterWidth=k[1], fusedActivationFunction=ctx.activation(act))
    op = "MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D"
    if int8:
        assert xv.quant is not None
        # TFLite int8 pooling keeps the input's parameters; a differing Q after it becomes a requantize.
        out = ctx.scratch(out_name + "_int8", physical_shape(ctx.shape(out_name), NHWC), "int8", xv.quant.spec())
        ctx.emit(op, [src], [out], opts)
        want = ctx.quant_output(out_name) or xv.quant
        ctx.set_int8(out_name, NHWC, out, xv.quant, want)
        return
    _, out = ctx.new_value(out_name, NHWC)
    ctx.emit(op, [src], [out], opts)


def lower_global_pool(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """GlobalAveragePool -> MEAN over H, W (keep dims) on NHWC data; GlobalMaxPool -> REDUCE_MAX."""
    x = node.input[0]
    if len(ctx.shape(x)) != 4:
        raise unsupported_variant(node, "a non-2D global pool")
    xv = ctx.value(x)
    out_name = node.output[0]
    q_out = ctx.quant_output(out_name) if xv.quant is not None else None
    if q_out is not None and xv.quant is not None and not rescale_ok(xv.quant.scale[0] / q_out.scale[0]):
        q_out = None
    op = "MEAN" if node.op_type == "GlobalAveragePool" else "REDUCE_MAX"
    axes = ctx.int32_const([1, 2], "axes_hw")
    opts = ctx.opts("ReducerOptions", keepDims=True)
    if q_out is not None or (op == "REDUCE_MAX" and xv.quant is not None):
        assert xv.quant is not None
        want = q_out or xv.quant
        have = want if op == "MEAN" else xv.quant
        out = ctx.scratch(out_name + "_int8", physical_shape(ctx.shape(out_name), NHWC), "int8", have.spec())
        ctx.emit(op, [ctx.tensor(x, NHWC), axes], [out], opts)
        ctx.set_int8(out_name, NHWC, out, have, want)
        return
    _, out = ctx.new_value(out_name, NHWC)
    ctx.emit(op, [ctx.float_tensor(x, NHWC), axes], [out], opts)
