"""ONNX graph facts quantization needs: which tensors to calibrate, fingerprints, depthwise convs, MAC counts."""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Ops whose weights carry the compute; a model without any of them has nothing worth quantizing.
COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16)


def static_op_types() -> list[str]:
    """Every op type ONNX Runtime's static quantizer (QDQ or QOperator) knows, sorted."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QDQRegistry) | set(QLinearOpsRegistry))


def initializer_names(graph: onnx.GraphProto) -> set[str]:
    """Names of constant tensors: initializers and Constant-node outputs."""
    names = {i.name for i in graph.initializer}
    names.update(n.output[0] for n in graph.node if n.op_type == "Constant" and n.output)
    return names


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every typed tensor (inputs, outputs, inferred intermediates)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - shape inference is best effort; declared types still count
        inferred = model
    types: dict[str, int] = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    return types


def compute_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes whose op type carries weights worth quantizing (Conv, ConvTranspose, Gemm, MatMul)."""
    return [n for n in model.graph.node if n.op_type in COMPUTE_OPS]


def activation_tensors(model: onnx.ModelProto, op_types: Iterable[str]) -> list[str]:
    """Float, non-constant tensors read or written by nodes of `op_types`: the ranges a static quantizer needs."""
    wanted = set(op_types)
    consts = initializer_names(model.graph)
    types = tensor_types(model)
    names: set[str] = set()
    for node in model.graph.node:
        if node.op_type not in wanted:
            continue
        for t in list(node.input) + list(node.output):
            if t and t not in consts and types.get(t) in _FLOAT_TYPES:
                names.add(t)
    return sorted(names)


def with_outputs(model: onnx.ModelProto, tensors: Iterable[str]) -> onnx.ModelProto:
    """A copy of `model` that also returns `tensors` as graph outputs (existing outputs first, in order)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    types = tensor_types(model)
    have = {o.name for o in out.graph.output}
    for name in tensors:
        if name not in have:
            out.graph.output.append(helper.make_tensor_value_info(name, types.get(name, TensorProto.FLOAT), None))
            have.add(name)
    return out


def graph_fingerprint(model: onnx.ModelProto) -> str:
    """sha256 of what computes the tensors (nodes, attributes, constants), ignoring declared shapes and names of
    nodes: two models with equal fingerprints give every tensor the same values, so one calibration serves both."""
    g = onnx.GraphProto()
    for node in model.graph.node:
        n = g.node.add()
        n.CopyFrom(node)
        n.name = ""
        n.doc_string = ""
    for init in sorted(model.graph.initializer, key=lambda i: i.name):
        g.initializer.add().CopyFrom(init)
    for vi in list(model.graph.input):
        g.input.add().name = vi.name
    h = hashlib.sha256(g.SerializeToString(deterministic=True))
    for op in sorted((o.domain, o.version) for o in model.opset_import):
        h.update(f"{op[0]}:{op[1]};".encode())
    return h.hexdigest()


def constant_array(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    """The value of an initializer, or None."""
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def is_depthwise(graph: onnx.GraphProto, node: onnx.NodeProto) -> bool:
    """True for a grouped Conv with one input channel per group (depthwise)."""
    if node.op_type != "Conv" or _attr(node, "group", 1) <= 1 or len(node.input) < 2:
        return False
    w = constant_array(graph, node.input[1])
    return w is not None and w.ndim >= 3 and w.shape[1] == 1


def mac_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Multiply-accumulates per op type for Conv, ConvTranspose, Gemm and MatMul at batch 1 (0 when unknown)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001
        inferred = model
    shapes: dict[str, list[int]] = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.output) + list(inferred.graph.value_info):
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    macs: dict[str, int] = {}
    for node in inferred.graph.node:
        if node.op_type not in COMPUTE_OPS or len(node.input) < 2:
            continue
        w, out = shapes.get(node.input[1]), shapes.get(node.output[0])
        a = shapes.get(node.input[0])
        count = 0
        if node.op_type in ("Conv", "ConvTranspose") and w and out and a:
            per_out = int(np.prod(w[1:]))  # Cin/group * kernel
            spatial = out if node.op_type == "Conv" else a
            count = int(np.prod(spatial[2:])) * (w[0] if node.op_type == "Conv" else w[1] * _attr(node, "group", 1))
            count *= per_out
        elif node.op_type in ("Gemm", "MatMul") and w and a and out:
            k = a[-1] if node.op_type == "MatMul" or not _attr(node, "transA", 0) else a[0]
            count = int(np.prod(out)) * int(k)
        macs[node.op_type] = macs.get(node.op_type, 0) + count
    return macs


def float_closure(model: onnx.ModelProto, float_nodes: Iterable[str]) -> list[str]:
    """Non-compute nodes that can only carry useless Q/DQ around float nodes: every activation input comes from a
    float node (or a graph input), or every output goes to float nodes (or is a graph output). Keeping a compute node
    float then also keeps the Relu/pool/reshape chain between it and its float neighbours float. Sorted names."""
    g = model.graph
    consts = initializer_names(g)
    producers = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = collections.defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
    outputs = {o.name for o in g.output}
    floats = set(float_nodes)
    start = set(floats)
    for _ in range(len(g.node) + 1):  # each round adds at least one node, or stops
        added = False
        for n in g.node:
            if not n.name or n.name in floats or n.op_type in COMPUTE_OPS:
                continue
            ins = [i for i in n.input if i and i not in consts]
            forward = all(i not in producers or producers[i].name in floats for i in ins)
            readers = [c for o in n.output for c in consumers.get(o, [])]
            backward = all(c.name in floats for c in readers) and (bool(readers) or any(o in outputs for o in n.output))
            if forward or backward:
                floats.add(n.name)
                added = True
        if not added:
            break
    return sorted(floats - start)


def name_nodes(model: onnx.ModelProto) -> None:
    """Give unnamed nodes unique, deterministic names (exclusion lists and reports refer to nodes by name)."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
