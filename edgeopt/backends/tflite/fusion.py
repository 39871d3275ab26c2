"""Fusing a following Relu/Clip into the op before it, as TFLite's fused_activation_function does."""

from __future__ import annotations

import math

import numpy as np
import onnx

from edgeopt.backends.tflite.context import LoweringContext, node_attrs


def clip_bounds(ctx: LoweringContext, node: onnx.NodeProto) -> tuple[float, float] | None:
    """(min, max) of a Clip node when both are compile-time constants (opset < 11 attributes or inputs)."""
    attrs = node_attrs(node)
    bounds = [float(attrs.get("min", -math.inf)), float(attrs.get("max", math.inf))]
    for i in (1, 2):
        if len(node.input) > i and node.input[i]:
            if not ctx.is_const(node.input[i]):
                return None
            bounds[i - 1] = float(np.asarray(ctx.const(node.input[i])).ravel()[0])
    lo, hi = (b if abs(b) < 3e38 else math.copysign(math.inf, b) for b in bounds)
    return lo, hi


def activation_of(ctx: LoweringContext, node: onnx.NodeProto) -> str | None:
    """The TFLite fused activation equal to this node (RELU, RELU6, RELU_N1_TO_1), or None."""
    if node.op_type == "Relu":
        return "RELU"
    if node.op_type == "Clip":
        bounds = clip_bounds(ctx, node)
        if bounds == (0.0, 6.0):
            return "RELU6"
        if bounds == (-1.0, 1.0):
            return "RELU_N1_TO_1"
        if bounds is not None and bounds[0] == 0.0 and math.isinf(bounds[1]):
            return "RELU"
    return None


def fused_activation(ctx: LoweringContext, name: str) -> tuple[str, str]:
    """(output name, activation): when `name`'s only consumer is a fusable activation, it is absorbed."""
    if name in ctx.graph.outputs:
        return name, "NONE"
    users = ctx.graph.consumers.get(name, [])
    if len(users) != 1:
        return name, "NONE"
    (user,) = users
    act = activation_of(ctx, user)
    if act is None or user.input[0] != name:
        return name, "NONE"
    ctx.done.add(id(user))
    return user.output[0], act


def non_negative(ctx: LoweringContext, name: str) -> bool:
    """Whether tensor `name` is >= 0 by construction: made by Relu / Relu6 / Clip(min >= 0), possibly behind Q/DQ."""
    for _ in range(4):  # Relu -> QuantizeLinear -> DequantizeLinear -> name, at most
        node = next((n for n in ctx.graph.nodes if name in n.output), None)
        if node is None:
            return False
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            bounds = clip_bounds(ctx, node) if node.op_type == "Clip" else None
            return node.op_type == "Relu" or (bounds is not None and bounds[0] >= 0.0)
        name = node.input[0]
    return False
