"""Lowering of elementwise ops: arithmetic, comparisons, activations, Cast, Where, Erf and IsNaN (by decomposition)."""

from __future__ import annotations

import math

import numpy as np
import onnx

from edgeopt.backends.tflite.context import LoweringContext, Value, node_attrs
from edgeopt.backends.tflite.errors import unsupported_variant
from edgeopt.backends.tflite.fusion import activation_of, clip_bounds, fused_activation
from edgeopt.backends.tflite.layout import Perm, physical_shape
from edgeopt.backends.tflite.quant import QParams, int8_add_ok, int8_product_ok, int8_table_ok

BINARY = {
    "Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV", "Pow": "POW", "Max": "MAXIMUM", "Min": "MINIMUM",
    "Equal": "EQUAL", "Greater": "GREATER", "Less": "LESS", "GreaterOrEqual": "GREATER_EQUAL",
    "LessOrEqual": "LESS_EQUAL", "And": "LOGICAL_AND", "Or": "LOGICAL_OR",
}
_FUSES_ACTIVATION = {"ADD", "SUB", "MUL", "DIV"}
_INT8_BINARY = {"ADD", "SUB", "MUL"}
_OPTIONS = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions"}
# Unary ops: ONNX op -> (TFLite op, int8 output parameters the kernel requires, or None when it takes any).
UNARY: dict[str, tuple[str, QParams | None]] = {
    "Relu": ("RELU", None), "Sigmoid": ("LOGISTIC", QParams((1 / 256,), (-128,))),
    "Tanh": ("TANH", QParams((1 / 128,), (0,))), "HardSwish": ("HARD_SWISH", None), "LeakyRelu": ("LEAKY_RELU", None),
    "Exp": ("EXP", None), "Log": ("LOG", None), "Sqrt": ("SQRT", None), "Neg": ("NEG", None), "Abs": ("ABS", None),
    "Sin": ("SIN", None), "Cos": ("COS", None), "Not": ("LOGICAL_NOT", None), "Floor": ("FLOOR", None),
    "Ceil": ("CEIL", None), "Round": ("ROUND", None), "Sign": ("SIGN", None), "Gelu": ("GELU", None),
}
_INT8_UNARY = {"RELU", "LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU"}


def _layout(ctx: LoweringContext, names: list[str]) -> Perm:
    """Layout of an elementwise op: that of its first computed full-rank input (constants follow at no cost)."""
    rank = max(len(ctx.shape(n)) for n in names)
    for n in names:
        v = ctx.value(n)
        if not v.is_const and len(v.shape) == rank:
            return v.perm
    return tuple(range(rank))


def _out_dtype(ctx: LoweringContext, name: str) -> str:
    return ctx.graph.dtypes.get(name, "float32")


def lower_binary(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Broadcasting binary ops; constants are laid out at compile time, Relu/Clip fused into ADD/SUB/MUL/DIV."""
    op = BINARY[node.op_type]
    rank = len(ctx.shape(node.output[0]))
    names = [ctx.with_rank(n, rank) for n in node.input]
    if op == "POW" and ctx.is_const(node.input[1]):
        exponent = np.asarray(ctx.const(node.input[1])).ravel()
        if exponent.size == 1 and float(exponent[0]) in (2.0, 0.5, 1.0):
            _lower_power(ctx, node, names[0], float(exponent[0]))
            return
    perm = _layout(ctx, names)
    out_name, act = fused_activation(ctx, node.output[0]) if op in _FUSES_ACTIVATION else (node.output[0], "NONE")
    values = [ctx.value(n) for n in names]
    quantized = op in _INT8_BINARY and all(v.quant is not None or v.is_const for v in values)
    q_out = ctx.quant_output(out_name) if quantized else None
    if q_out is not None:
        s1, s2 = (p.scale[0] for p in (ctx.int8_params(n) for n in names) if p is not None)
        ok = int8_add_ok(s1, s2, q_out.scale[0]) if op in ("ADD", "SUB") else int8_product_ok(s1, (s2,), q_out.scale[0])
        q_out = q_out if ok else None
    opts = ctx.opts(_OPTIONS[op], fusedActivationFunction=ctx.activation(act)) if op in _OPTIONS else None
    if q_out is not None:
        ins = [ctx.int8_operand(n, perm)[0] for n in names]
        out = ctx.scratch(out_name + "_int8", physical_shape(ctx.shape(out_name), perm), "int8", q_out.spec())
        ctx.emit(op, ins, [out], opts)
        ctx.set_int8(out_name, perm, out, q_out, q_out)
        return
    in_dtypes = {ctx.value(n).dtype for n in names}
    floating = "float32" in in_dtypes or "int8" in in_dtypes
    ins = [ctx.float_tensor(n, perm) if floating else ctx.tensor(n, perm) for n in names]
    dtype = _out_dtype(ctx, out_name)
    _, out = ctx.new_value(out_name, perm, dtype)
    ctx.emit(op, ins, [out], opts)


def _lower_power(ctx: LoweringContext, node: onnx.NodeProto, x: str, exponent: float) -> None:
    """x**2 -> MUL(x, x), x**0.5 -> SQRT, x**1 -> identity."""
    if exponent == 1.0:
        ctx.alias(node.output[0], ctx.value(x))
        return
    perm = ctx.value(x).perm if not ctx.is_const(x) else tuple(range(len(ctx.shape(x))))
    src = ctx.float_tensor(x, perm)
    _, out = ctx.new_value(node.output[0], perm)
    if exponent == 2.0:
        ctx.emit("MUL", [src, src], [out], ctx.opts("MulOptions"))
    else:
        ctx.emit("SQRT", [src], [out])


def lower_unary(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """One-input elementwise ops, in the input's layout; int8 where the TFLite kernel has an int8 version."""
    x = node.input[0]
    v = ctx.value(x)
    op, fixed = UNARY[node.op_type]
    attrs = node_attrs(node)
    opts = None
    if op == "LEAKY_RELU":
        opts = ctx.opts("LeakyReluOptions", alpha=float(attrs.get("alpha", 0.01)))
    elif op == "GELU":
        opts = ctx.opts("GeluOptions", approximate=attrs.get("approximate", "none") == "tanh")
    out_name = node.output[0]
    q_out = ctx.quant_output(out_name) if v.quant is not None and op in _INT8_UNARY else None
    if q_out is not None and v.quant is not None and fixed is not None and not int8_table_ok(v.quant.scale[0]):
        q_out = None
    if q_out is not None:
        have = fixed or q_out
        out = ctx.scratch(out_name + "_int8", physical_shape(v.shape, v.perm), "int8", have.spec())
        ctx.emit(op, [ctx.tensor(x)], [out], opts)
        ctx.set_int8(out_name, v.perm, out, have, q_out)
        return
    src = ctx.tensor(x) if v.dtype == "bool" else ctx.float_tensor(x)
    _, out = ctx.new_value(out_name, v.perm, _out_dtype(ctx, out_name))
    ctx.emit(op, [src], [out], opts)


def lower_clip(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Clip -> RELU / RELU6 / RELU_N1_TO_1 when the bounds match, else MAXIMUM then MINIMUM."""
    x = node.input[0]
    v = ctx.value(x)
    act = activation_of(ctx, node)
    out_name = node.output[0]
    if act is not None:
        q_out = ctx.quant_output(out_name) if v.quant is not None else None
        if q_out is not None:
            out = ctx.scratch(out_name + "_int8", physical_shape(v.shape, v.perm), "int8", q_out.spec())
            ctx.emit(act, [ctx.tensor(x)], [out])
            ctx.set_int8(out_name, v.perm, out, q_out, q_out)
            return
        _, out = ctx.new_value(out_name, v.perm)
        ctx.emit(act, [ctx.float_tensor(x)], [out])
        return
    bounds = clip_bounds(ctx, node)
    if bounds is None:
        raise unsupported_variant(node, "computed clip bounds")
    src = ctx.float_tensor(x)
    shape = physical_shape(v.shape, v.perm)
    for i, (op, bound) in enumerate((("MAXIMUM", bounds[0]), ("MINIMUM", bounds[1]))):
        if math.isinf(bound):
            continue
        last = i == 1 or math.isinf(bounds[1])
        out = ctx.new_value(out_name, v.perm)[1] if last else ctx.scratch(out_name + "_lo", shape)
        ctx.emit(op, [src, ctx.const_tensor(np.asarray(bound, np.float32), f"{out_name}_{op.lower()}")], [out])
        src = out
    if all(math.isinf(b) for b in bounds):
        ctx.alias(out_name, v)


def lower_hard_sigmoid(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """HardSigmoid = clamp(alpha*x + beta, 0, 1) -> MUL, ADD, RELU_0_TO_1."""
    attrs = node_attrs(node)
    x = node.input[0]
    v = ctx.value(x)
    shape = physical_shape(v.shape, v.perm)
    name = node.output[0]
    scaled = ctx.scratch(name + "_scaled", shape)
    ctx.emit("MUL", [ctx.float_tensor(x), ctx.const_tensor(np.asarray(attrs.get("alpha", 0.2), np.float32), "alpha")],
             [scaled], ctx.opts("MulOptions"))
    shifted = ctx.scratch(name + "_shifted", shape)
    ctx.emit("ADD", [scaled, ctx.const_tensor(np.asarray(attrs.get("beta", 0.5), np.float32), "beta")], [shifted],
             ctx.opts("AddOptions"))
    _, out = ctx.new_value(name, v.perm)
    ctx.emit("RELU_0_TO_1", [shifted], [out])


# Abramowitz & Stegun 7.1.26: |erf(x) - approx| < 1.5e-7 over all x.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def lower_erf(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Erf (no TFLite builtin) -> sign(x) * (1 - poly(t) * exp(-x^2)), t = 1 / (1 + p|x|); error < 1.5e-7."""
    x = node.input[0]
    v = ctx.value(x)
    shape = physical_shape(v.shape, v.perm)
    name = node.output[0]
    src = ctx.float_tensor(x)

    def c(val: float) -> int:
        return ctx.const_tensor(np.asarray(val, np.float32), f"erf_{val:g}")

    def op(kind: str, ins: list[int], tag: str, out: int | None = None) -> int:
        out = ctx.scratch(f"{name}_{tag}", shape) if out is None else out
        opts = ctx.opts(_OPTIONS[kind]) if kind in _OPTIONS else None
        ctx.emit(kind, ins, [out], opts)
        return out

    ax = op("ABS", [src], "abs")
    t = op("DIV", [c(1.0), op("ADD", [op("MUL", [ax, c(_ERF_P)], "px"), c(1.0)], "den")], "t")
    poly = op("MUL", [t, c(_ERF_A[4])], "p4")
    for i, a in enumerate(reversed(_ERF_A[:4])):
        poly = op("MUL", [op("ADD", [poly, c(a)], f"s{i}"), t], f"p{i}")
    e = op("EXP", [op("NEG", [op("MUL", [src, src], "sq")], "negsq")], "exp")
    y = op("SUB", [c(1.0), op("MUL", [poly, e], "pe")], "abs_erf")
    _, out = ctx.new_value(name, v.perm)
    op("MUL", [op("SIGN", [src], "sign"), y], "out", out)


def lower_cast(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Cast -> CAST (a cast to the same type is free; an int8 value cast to float is its dequantized tensor)."""
    x = node.input[0]
    v = ctx.value(x)
    name = node.output[0]
    to = _out_dtype(ctx, name)
    if v.quant is not None and to == "float32":
        src = ctx.float_tensor(x)
        ctx.alias(name, Value(name, v.shape, "float32", v.perm, tensors={v.perm: src}, float_tensors={v.perm: src}))
        return
    if to == v.dtype:
        ctx.alias(name, v)
        return
    _, out = ctx.new_value(name, v.perm, to)
    ctx.emit("CAST", [ctx.tensor(x)], [out], ctx.opts("CastOptions"))


def lower_prelu(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """PRelu -> PRELU with the slope laid out (and broadcast) like the input."""
    x, slope = node.input[0], node.input[1]
    v = ctx.value(x)
    rank = len(v.shape)
    if not ctx.is_const(slope):
        raise unsupported_variant(node, "a computed slope")
    alpha = ctx.const(slope).astype(np.float32)
    alpha = alpha.reshape((1,) * (rank - alpha.ndim) + alpha.shape)
    _, out = ctx.new_value(node.output[0], v.perm)
    ctx.emit("PRELU", [ctx.float_tensor(x), ctx.const_tensor(np.transpose(alpha, v.perm), slope, weight=True)], [out])


def lower_where(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Where(cond, x, y) -> SELECT_V2 (broadcasting)."""
    rank = len(ctx.shape(node.output[0]))
    names = [ctx.with_rank(n, rank) for n in node.input]
    perm = _layout(ctx, names)
    dtype = _out_dtype(ctx, node.output[0])
    ins = [ctx.tensor(names[0], perm)] + [
        ctx.float_tensor(n, perm) if dtype == "float32" else ctx.tensor(n, perm) for n in names[1:]
    ]
    _, out = ctx.new_value(node.output[0], perm, dtype)
    ctx.emit("SELECT_V2", ins, [out], ctx.opts("SelectV2Options"))


def lower_isnan(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """IsNaN (no TFLite builtin) -> NOT_EQUAL(x, x): NaN is the only value that differs from itself."""
    x = node.input[0]
    v = ctx.value(x)
    src = ctx.float_tensor(x)
    _, out = ctx.new_value(node.output[0], v.perm, "bool")
    ctx.emit("NOT_EQUAL", [src, src], [out], ctx.opts("NotEqualOptions"))
