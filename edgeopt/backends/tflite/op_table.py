"""The one table of ONNX ops the TFLite lowering supports: it drives the converter, `inspect` and the errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx

from edgeopt.backends.tflite import ops_conv, ops_elementwise, ops_linear, ops_qdq, ops_reduce, ops_resize, ops_shape
from edgeopt.backends.tflite.context import LoweringContext
from edgeopt.backends.tflite.errors import unsupported_variant

Lowering = Callable[[LoweringContext, onnx.NodeProto], None]


@dataclass(frozen=True)
class OpSupport:
    """How one ONNX op lowers: the function, the TFLite ops it becomes, whether int8 kernels exist, caveats."""

    lower: Lowering
    tflite: str
    int8: bool
    notes: str = ""


def _folded(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    raise unsupported_variant(node, "an input without a static shape", "give every input a static shape")


_E = ops_elementwise
_S = ops_shape

# In priority order: CNN ops first, then transformer ops, then the rest.
SUPPORTED_OPS: dict[str, OpSupport] = {
    "Conv": OpSupport(ops_conv.lower_conv, "CONV_2D, DEPTHWISE_CONV_2D", True,
                      "2-D only; grouped and depthwise; pads become SAME or an explicit PAD; Relu/Clip fused"),
    "Gemm": OpSupport(ops_linear.lower_gemm, "FULLY_CONNECTED", True, "constant B; alpha/beta folded; Relu fused"),
    "MatMul": OpSupport(ops_linear.lower_matmul, "FULLY_CONNECTED, BATCH_MATMUL", True,
                        "constant 2-D B -> FULLY_CONNECTED, else BATCH_MATMUL (transposed operands use adj flags)"),
    "Add": OpSupport(_E.lower_binary, "ADD", True, "broadcasting; Relu/Clip fused"),
    "Sub": OpSupport(_E.lower_binary, "SUB", True, "broadcasting; Relu/Clip fused"),
    "Mul": OpSupport(_E.lower_binary, "MUL", True, "broadcasting; Relu/Clip fused"),
    "Div": OpSupport(_E.lower_binary, "DIV", False, "broadcasting; float only"),
    "Relu": OpSupport(_E.lower_unary, "RELU", True, "fused into the producer where TFLite allows"),
    "Clip": OpSupport(_E.lower_clip, "RELU6, RELU_N1_TO_1, RELU, MAXIMUM/MINIMUM", True, "constant bounds"),
    "LeakyRelu": OpSupport(_E.lower_unary, "LEAKY_RELU", True),
    "Sigmoid": OpSupport(_E.lower_unary, "LOGISTIC", True, "int8 output is requantized from 1/256"),
    "HardSigmoid": OpSupport(_E.lower_hard_sigmoid, "MUL, ADD, RELU_0_TO_1", False),
    "HardSwish": OpSupport(_E.lower_unary, "HARD_SWISH", True),
    "Tanh": OpSupport(_E.lower_unary, "TANH", True, "int8 output is requantized from 1/128"),
    "Gelu": OpSupport(_E.lower_unary, "GELU", False, "approximate none or tanh"),
    "Erf": OpSupport(_E.lower_erf, "ABS, MUL, ADD, DIV, EXP, SIGN", False,
                     "no TFLite builtin: polynomial decomposition, error < 1.5e-7"),
    "MaxPool": OpSupport(ops_conv.lower_pool, "MAX_POOL_2D", True,
                         "2-D; non-SAME pads via PAD when the input cannot be negative, else PADV2 (-inf)"),
    "AveragePool": OpSupport(ops_conv.lower_pool, "AVERAGE_POOL_2D", True,
                             "2-D; pads must match SAME unless count_include_pad=1"),
    "GlobalAveragePool": OpSupport(ops_conv.lower_global_pool, "MEAN", True),
    "GlobalMaxPool": OpSupport(ops_conv.lower_global_pool, "REDUCE_MAX", True),
    "Reshape": OpSupport(_S.lower_reshape, "RESHAPE", True),
    "Flatten": OpSupport(_S.lower_reshape, "RESHAPE", True),
    "Squeeze": OpSupport(_S.lower_reshape, "RESHAPE", True),
    "Unsqueeze": OpSupport(_S.lower_reshape, "RESHAPE", True),
    "Transpose": OpSupport(_S.lower_transpose, "(none: layout bookkeeping)", True, "free; TRANSPOSE only where needed"),
    "Concat": OpSupport(_S.lower_concat, "CONCATENATION", True, "int8 inputs requantized to a common scale"),
    "Split": OpSupport(_S.lower_split, "SPLIT, SPLIT_V", True),
    "Slice": OpSupport(_S.lower_slice, "STRIDED_SLICE", True, "constant starts/ends/axes/steps"),
    "Pad": OpSupport(_S.lower_pad, "PAD, PADV2, MIRROR_PAD", True, "constant or reflect mode; constant pads"),
    "Resize": OpSupport(ops_resize.lower_resize, "RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR", True,
                        "nearest or linear over H, W; flags chosen by matching sampling positions"),
    "Upsample": OpSupport(ops_resize.lower_resize, "RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR", True),
    "Softmax": OpSupport(ops_reduce.lower_softmax, "SOFTMAX", True, "over one axis"),
    "LogSoftmax": OpSupport(ops_reduce.lower_softmax, "LOG_SOFTMAX", False),
    "ReduceMean": OpSupport(ops_reduce.lower_reduce, "MEAN", True),
    "ReduceSum": OpSupport(ops_reduce.lower_reduce, "SUM", True),
    "ReduceMax": OpSupport(ops_reduce.lower_reduce, "REDUCE_MAX", True),
    "ReduceMin": OpSupport(ops_reduce.lower_reduce, "REDUCE_MIN", True),
    "ReduceL2": OpSupport(ops_reduce.lower_reduce_sum_of, "MUL, SUM, SQRT", False, "float only"),
    "ReduceL1": OpSupport(ops_reduce.lower_reduce_sum_of, "ABS, SUM", False, "float only"),
    "ReduceSumSquare": OpSupport(ops_reduce.lower_reduce_sum_of, "MUL, SUM", False, "float only"),
    "LayerNormalization": OpSupport(ops_reduce.lower_layer_norm, "MEAN, SQUARED_DIFFERENCE, RSQRT, SUB, MUL, ADD",
                                    False, "decomposed; runs in float inside int8 models"),
    "BatchNormalization": OpSupport(ops_reduce.lower_batch_norm, "MUL, ADD", False,
                                    "inference mode; better folded into the Conv by the simplify pass"),
    "PRelu": OpSupport(_E.lower_prelu, "PRELU", False, "constant slope"),
    "Gather": OpSupport(_S.lower_gather, "GATHER", True, "embeddings (constant table) and index selection"),
    "GatherND": OpSupport(_S.lower_gather_nd, "GATHER_ND", False,
                          "batch_dims 0; computed indices must be non-negative"),
    "Identity": OpSupport(_S.lower_identity, "(none)", True),
    "Dropout": OpSupport(_S.lower_identity, "(none)", True, "inference: identity"),
    "Cast": OpSupport(_E.lower_cast, "CAST", False),
    "Where": OpSupport(_E.lower_where, "SELECT_V2", False),
    "Equal": OpSupport(_E.lower_binary, "EQUAL", False),
    "Greater": OpSupport(_E.lower_binary, "GREATER", False),
    "Less": OpSupport(_E.lower_binary, "LESS", False),
    "GreaterOrEqual": OpSupport(_E.lower_binary, "GREATER_EQUAL", False),
    "LessOrEqual": OpSupport(_E.lower_binary, "LESS_EQUAL", False),
    "And": OpSupport(_E.lower_binary, "LOGICAL_AND", False),
    "Or": OpSupport(_E.lower_binary, "LOGICAL_OR", False),
    "Not": OpSupport(_E.lower_unary, "LOGICAL_NOT", False),
    "IsNaN": OpSupport(_E.lower_isnan, "NOT_EQUAL (x != x)", False),
    "Pow": OpSupport(_E.lower_binary, "POW (x^2 -> MUL, x^0.5 -> SQRT)", False),
    "Sqrt": OpSupport(_E.lower_unary, "SQRT", False),
    "Exp": OpSupport(_E.lower_unary, "EXP", False),
    "Log": OpSupport(_E.lower_unary, "LOG", False),
    "Neg": OpSupport(_E.lower_unary, "NEG", False),
    "Abs": OpSupport(_E.lower_unary, "ABS", False),
    "Max": OpSupport(_E.lower_binary, "MAXIMUM", False, "two inputs"),
    "Min": OpSupport(_E.lower_binary, "MINIMUM", False, "two inputs"),
    "Expand": OpSupport(_S.lower_expand, "BROADCAST_TO", False),
    "Tile": OpSupport(_S.lower_tile, "TILE", False),
    "QuantizeLinear": OpSupport(ops_qdq.lower_quantize, "QUANTIZE (or folded)", True, "8-bit, per-tensor activations"),
    "DequantizeLinear": OpSupport(ops_qdq.lower_dequantize, "DEQUANTIZE (or folded)", True,
                                  "weights: per-channel or per-tensor 8-bit; bias: int32"),
    "Shape": OpSupport(_folded, "(folded at compile time)", True, "static shapes only"),
    "Constant": OpSupport(_folded, "(folded at compile time)", True),
}


def unsupported_nodes(nodes: list[onnx.NodeProto]) -> list[tuple[str, str]]:
    """(op type, node name) of every node the table does not cover (non-default domains included)."""
    out = []
    for n in nodes:
        if n.op_type not in SUPPORTED_OPS or n.domain not in ("", "ai.onnx"):
            op = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
            out.append((op, n.name or f"<{n.op_type} -> {n.output[0] if n.output else '?'}>"))
    return out
