"""Lowering of Resize/Upsample (nearest, bilinear): the TFLite flags are chosen by matching sampling positions."""

from __future__ import annotations

import numpy as np
import onnx

from edgeopt.backends.tflite.context import LoweringContext, node_attrs
from edgeopt.backends.tflite.errors import unsupported_variant
from edgeopt.backends.tflite.layout import NHWC, physical_shape

_FLAGS = ((False, False), (True, False), (False, True))  # (align_corners, half_pixel_centers)


def _onnx_coords(n_out: int, n_in: int, scale: float, mode: str) -> np.ndarray | None:
    """Source coordinates ONNX Resize samples for each output index (None for modes not handled)."""
    x = np.arange(n_out, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if n_out > 1 else np.zeros(1)
    if mode == "align_corners":
        return x * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros(1)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    return None


def _onnx_nearest(n_out: int, n_in: int, scale: float, mode: str, rounding: str) -> np.ndarray | None:
    c = _onnx_coords(n_out, n_in, scale, mode)
    if c is None:
        return None
    rounders = {
        "round_prefer_floor": lambda v: np.ceil(v - 0.5),
        "round_prefer_ceil": lambda v: np.floor(v + 0.5),
        "floor": np.floor,
        "ceil": np.ceil,
    }
    return np.clip(rounders[rounding](c), 0, n_in - 1).astype(np.int64)


def _tf_nearest(n_out: int, n_in: int, align: bool, half: bool) -> np.ndarray:
    """TFLite's GetNearestNeighbor for every output index."""
    scale = (n_in - 1) / (n_out - 1) if align and n_out > 1 else n_in / n_out
    x = (np.arange(n_out, dtype=np.float64) + (0.5 if half else 0.0)) * scale
    idx = np.round(x) if align else np.floor(x)
    return np.clip(idx, 0, n_in - 1).astype(np.int64)


def _tf_linear(n_out: int, n_in: int, align: bool, half: bool) -> np.ndarray:
    """Source coordinates TFLite's bilinear resize samples (clamped like ONNX's)."""
    scale = (n_in - 1) / (n_out - 1) if align and n_out > 1 else n_in / n_out
    x = np.arange(n_out, dtype=np.float64)
    return np.clip((x + 0.5) * scale - 0.5 if half else x * scale, 0, n_in - 1)


def lower_resize(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Resize/Upsample of H and W -> RESIZE_NEAREST_NEIGHBOR or RESIZE_BILINEAR with matching flags."""
    attrs = node_attrs(node)
    x = node.input[0]
    v = ctx.value(x)
    out_name = node.output[0]
    in_shape, out_shape = v.shape, ctx.shape(out_name)
    if len(in_shape) != 4 or in_shape[:2] != out_shape[:2]:
        raise unsupported_variant(node, "resizing other than H and W of an NCHW tensor")
    mode = attrs.get("mode", "nearest")
    default_coord = "asymmetric" if node.op_type == "Upsample" or ctx.graph.opset < 11 else "half_pixel"
    coord = attrs.get("coordinate_transformation_mode", default_coord)
    rounding = attrs.get("nearest_mode", "round_prefer_floor" if ctx.graph.opset >= 11 else "floor")
    scales_name = node.input[2] if node.op_type == "Resize" and ctx.graph.opset >= 11 else node.input[-1]
    scales = None
    if len(node.input) > 1 and scales_name and ctx.is_const(scales_name):
        arr = np.asarray(ctx.const(scales_name), np.float64).ravel()
        scales = arr if arr.size == 4 else None
    chosen = None
    for align, half in _FLAGS:
        ok = True
        for i in (2, 3):
            scale = float(scales[i]) if scales is not None else out_shape[i] / in_shape[i]
            if mode == "nearest":
                want = _onnx_nearest(out_shape[i], in_shape[i], scale, coord, rounding)
                got = _tf_nearest(out_shape[i], in_shape[i], align, half)
            elif mode == "linear":
                c = _onnx_coords(out_shape[i], in_shape[i], scale, coord)
                want = None if c is None else np.clip(c, 0, in_shape[i] - 1)
                got = _tf_linear(out_shape[i], in_shape[i], align, half)
            else:
                raise unsupported_variant(node, f"mode '{mode}'", "use nearest or linear (bilinear) resizing")
            if want is None or want.shape != got.shape or not np.allclose(want, got, atol=1e-6):
                ok = False
                break
        if ok:
            chosen = (align, half)
            break
    if chosen is None:
        raise unsupported_variant(node, f"{mode} resize with coordinate_transformation_mode '{coord}'"
                                  + (f" and nearest_mode '{rounding}'" if mode == "nearest" else ""))
    op, kind = ("RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighborOptions") if mode == "nearest" else (
        "RESIZE_BILINEAR", "ResizeBilinearOptions")
    opts = ctx.opts(kind, alignCorners=chosen[0], halfPixelCenters=chosen[1])
    size = ctx.int32_const([out_shape[2], out_shape[3]], "resize_size")
    if v.quant is not None:
        out = ctx.scratch(out_name + "_int8", physical_shape(out_shape, NHWC), "int8", v.quant.spec())
        ctx.emit(op, [ctx.tensor(x, NHWC), size], [out], opts)
        ctx.set_int8(out_name, NHWC, out, v.quant, ctx.quant_output(out_name) or v.quant)
        return
    _, out = ctx.new_value(out_name, NHWC)
    ctx.emit(op, [ctx.float_tensor(x, NHWC), size], [out], opts)
