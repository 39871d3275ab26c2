"""Which ONNX ops TensorRT 10's ONNX parser imports, to say before any engine build (and on machines without
TensorRT) which nodes `trtexec` or the builder would reject.

The list is onnx-tensorrt's operator support matrix for TensorRT 10.1 (`docs/operators.md`), ops marked supported;
later 10.x releases only add to it. Type and attribute restrictions are not checked here: where TensorRT is installed,
the parser's own errors, named by node, are the authority (`build.py`). An op outside the list, or from another domain
than the default ONNX one, parses only when a TensorRT plugin of that name is registered.
"""

from __future__ import annotations

import onnx

LIST_VERSION = "10.1"
PARSER_OPS: frozenset[str] = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike Ceil Celu
Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace DequantizeLinear Div
Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather GatherElements GatherND Gelu Gemm
GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization HardSigmoid
HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu
Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min
Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or PRelu Pad ParametricSoftplus Pow QuantizeLinear RNN
RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceLogSum ReduceLogSumExp
ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RoiAlign
Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax
Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu
Unsqueeze Upsample Where Xor
""".split())
_DEFAULT_DOMAINS = ("", "ai.onnx")


def _walk(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Every node of a graph and of the subgraphs of its If/Loop/Scan nodes."""
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        nodes.append(node)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                nodes.extend(_walk(attr.g))
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    nodes.extend(_walk(g))
    return nodes


def unparsed_nodes(model: onnx.ModelProto) -> list[str]:
    """The nodes TensorRT's ONNX parser has no importer for, each as `Op 'node'` (domain-qualified outside the
    default domain; an unnamed node by its first output), in graph order, subgraphs after their If/Loop/Scan."""
    found = []
    for node in _walk(model.graph):
        if node.domain in _DEFAULT_DOMAINS and node.op_type in PARSER_OPS:
            continue
        op = node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
        found.append(f"{op} '{node.name}'" if node.name else f"{op} (output '{node.output[0]}')")
    return found


def describe_unparsed(found: list[str]) -> str:
    """One line about `unparsed_nodes`' findings."""
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    nodes = f"{len(found)} node{'s' if len(found) != 1 else ''}"
    return (f"TensorRT {LIST_VERSION}'s ONNX parser has no importer for: {shown} ({nodes}); the engine build fails "
            "there unless a TensorRT plugin of that name is registered")
