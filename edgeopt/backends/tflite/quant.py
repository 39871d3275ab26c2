"""Quantization parameters read from ONNX Q/DQ nodes, and the weight/bias quantization TFLite kernels expect."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx

from edgeopt.backends.tflite.flatbuffer import QuantSpec
from edgeopt.backends.tflite.layout import Perm, physical_axis
from edgeopt.errors import ConfigError

_INT8_MIN, _INT8_MAX = -128, 127
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class QParams:
    """Int8 quantization of one tensor: per-tensor, or per-channel along logical `axis`."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    @property
    def per_tensor(self) -> bool:
        return len(self.scale) == 1

    def spec(self, perm: Perm | None = None) -> QuantSpec:
        """The TFLite form, with the channel axis moved to its place in layout `perm`."""
        axis = 0 if self.axis is None or self.per_tensor else self.axis
        if perm is not None and not self.per_tensor and self.axis is not None:
            axis = physical_axis(self.axis, perm)
        return QuantSpec(self.scale, self.zero_point, axis)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Float values of int8 data `q` (logical layout)."""
        scale = np.asarray(self.scale, np.float32)
        zp = np.asarray(self.zero_point, np.float32)
        if not self.per_tensor and self.axis is not None:
            shape = [1] * q.ndim
            shape[self.axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        return ((q.astype(np.float32) - zp) * scale).astype(np.float32)


@dataclass(frozen=True)
class QConst:
    """A constant that reached the graph through DequantizeLinear: its int8 values and parameters."""

    values: np.ndarray
    params: QParams


def _as_tuple(a: np.ndarray, kind: type) -> tuple:
    return tuple(kind(x) for x in np.asarray(a).ravel())


def qparams_of(node: onnx.NodeProto, constants: dict[str, np.ndarray], rank: int) -> tuple[QParams, str]:
    """The parameters of a QuantizeLinear/DequantizeLinear node and its integer type ('int8' or 'uint8')."""
    if len(node.input) < 2 or node.input[1] not in constants:
        raise ConfigError(
            f"{node.op_type} '{node.name}' has a computed scale; only constant Q/DQ parameters can be lowered",
            "re-quantize the model with constant scales",
        )
    scale = constants[node.input[1]].astype(np.float32)
    if len(node.input) > 2 and node.input[2]:
        if node.input[2] not in constants:
            raise ConfigError(f"{node.op_type} '{node.name}' has a computed zero point", "re-quantize the model")
        zp = constants[node.input[2]]
    else:
        zp = np.zeros(scale.shape, np.uint8)
    kind = str(zp.dtype)
    if kind not in ("int8", "uint8"):
        raise ConfigError(
            f"{node.op_type} '{node.name}' uses {kind}; the TFLite backend lowers 8-bit Q/DQ models only",
            "quantize activations and weights to int8",
        )
    zp64 = zp.astype(np.int64) - (128 if kind == "uint8" else 0)
    axis = None
    if scale.size > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        axis = axis + rank if axis < 0 else axis
    if zp64.size == 1 and scale.size > 1:
        zp64 = np.full(scale.shape, int(zp64.ravel()[0]), np.int64)
    return QParams(_as_tuple(scale, float), _as_tuple(zp64, int), axis), kind


def to_int8_values(values: np.ndarray, kind: str) -> np.ndarray:
    """Stored integers as int8 (uint8 data shifts by 128 with its zero point, which is exact)."""
    if kind == "uint8":
        return (values.astype(np.int16) - 128).astype(np.int8)
    return values.astype(np.int8)


def quantize_symmetric(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, QParams]:
    """Symmetric int8 weights (zero point 0, range [-127, 127]), per channel along `axis` or per tensor."""
    w = w.astype(np.float32)
    if axis is None:
        amax = np.asarray([np.max(np.abs(w)) if w.size else 0.0], np.float32)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.round(w / scale[0]), -127, 127).astype(np.int8)
        return q, QParams(_as_tuple(scale, float), (0,))
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    amax = np.max(np.abs(moved), axis=1) if moved.size else np.zeros(w.shape[axis], np.float32)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, QParams(_as_tuple(scale, float), (0,) * len(scale), axis)


def quantize_asymmetric(x: np.ndarray) -> tuple[np.ndarray, QParams]:
    """Per-tensor asymmetric int8 for a float constant feeding an int8 op (its range always includes 0)."""
    lo, hi = min(float(np.min(x)), 0.0), max(float(np.max(x)), 0.0)
    scale = (hi - lo) / 255.0 or 1.0
    zp = int(np.clip(round(_INT8_MIN - lo / scale), _INT8_MIN, _INT8_MAX))
    q = np.clip(np.round(x / scale) + zp, _INT8_MIN, _INT8_MAX).astype(np.int8)
    return q, QParams((float(scale),), (zp,))


def int8_weights(values: np.ndarray, qconst: QConst | None, axis: int) -> tuple[np.ndarray, QParams]:
    """Symmetric per-channel (along logical `axis`) int8 weights: the model's own if they fit, else re-derived."""
    if qconst is not None and all(z == 0 for z in qconst.params.zero_point):
        p = qconst.params
        if p.per_tensor:
            n = values.shape[axis]
            return qconst.values.astype(np.int8), QParams(p.scale * n, (0,) * n, axis)
        if p.axis == axis:
            return qconst.values.astype(np.int8), p
    return quantize_symmetric(values, axis)


def int32_bias(bias: np.ndarray, input_scale: float, weight_scale: tuple[float, ...]) -> tuple[np.ndarray, QParams]:
    """Int32 bias with scale input_scale * weight_scale[c] and zero point 0, as TFLite's int8 kernels require."""
    scale = np.asarray(weight_scale, np.float64) * float(input_scale)
    q = np.clip(np.round(bias.astype(np.float64) / scale), -_INT32_MAX, _INT32_MAX).astype(np.int32)
    axis = None if scale.size == 1 else 0
    return q, QParams(_as_tuple(scale.astype(np.float32), float), (0,) * scale.size, axis)


def rescale_ok(*reals: float) -> bool:
    """Whether TFLite can express each real rescale factor as a fixed-point multiplier (its kernels abort if not)."""
    return all(math.isfinite(r) and 2.0**-31 < r < 2.0**31 for r in reals)


def int8_add_ok(s1: float, s2: float, out: float) -> bool:
    """Whether TFLite's int8 ADD/SUB can rescale inputs of scales s1, s2 to `out` (20-bit headroom)."""
    twice = 2.0 * max(s1, s2)
    return rescale_ok(s1 / twice, s2 / twice) and twice / ((1 << 20) * out) < 1.0 and rescale_ok(twice / out)


def int8_product_ok(in_scale: float, other_scales: tuple[float, ...], out: float) -> bool:
    """Whether products (conv, fully connected, matmul, mul) with these scales fit TFLite's int8 rescaling."""
    return rescale_ok(*(in_scale * s / out for s in other_scales))


def int8_table_ok(in_scale: float) -> bool:
    """Whether a lookup-table kernel (softmax, logistic, tanh) accepts an int8 input of this scale."""
    return rescale_ok(in_scale) and in_scale < 2.0**10
