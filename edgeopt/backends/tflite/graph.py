"""ONNX graph preparation for lowering: fix input shapes, fold constants, and give every tensor a static shape."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgeopt.errors import ConfigError

_ONNX_TO_NP = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT16: "int16",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.BOOL: "bool",
}
# Kept as nodes even with constant inputs: the lowering reads quantized weights from them.
_NEVER_FOLD = {"QuantizeLinear", "DequantizeLinear"}
_MAX_FOLD_ROUNDS = 8


@dataclass
class OnnxGraph:
    """A static-shaped ONNX graph ready for lowering: nodes left after folding, constants, shapes and dtypes."""

    nodes: list[onnx.NodeProto]
    constants: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    inputs: list[str]
    outputs: list[str]
    opset: int
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        """Recompute who reads each tensor (after a rewrite of `nodes`)."""
        self.consumers = {}
        for node in self.nodes:
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.constants:
            return tuple(int(d) for d in self.constants[name].shape)
        return self.shapes[name]


def _static_dims(vi: onnx.ValueInfoProto) -> list[int | str | None]:
    dims: list[int | str | None] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or None)
    return dims


def dynamic_dim_error(name: str, dims: list[int | str | None] | tuple[int | str | None, ...]) -> ConfigError | None:
    """The error for the first dynamic dim other than the batch (TFLite needs static shapes), or None."""
    for i, d in enumerate(dims):
        if i > 0 and not (isinstance(d, int) and d > 0):
            example = ",".join(
                str(x) if isinstance(x, int) and x > 0 else "1" if j == 0 else f"<{x or 'size'}>"
                for j, x in enumerate(dims)
            )
            return ConfigError(
                f"input '{name}' has dynamic dimension {i} ({d or '?'}); TFLite needs static shapes",
                f"fix its size with --input-shape {name}:{example} (e.g. --input-shape NAME:1,3,224,224)",
            )
    return None


def input_shape(vi: onnx.ValueInfoProto, batch: int, override: list[int] | None) -> list[int]:
    """Concrete shape of a graph input: the override, else its dims with a dynamic batch set to `batch`."""
    dims = _static_dims(vi)
    if override is not None:
        if len(override) != len(dims):
            raise ConfigError(
                f"input shape override for '{vi.name}' has {len(override)} dims but the input has {len(dims)}",
                f"give all {len(dims)} dims, e.g. --input-shape {vi.name}:" + ",".join(str(d or 1) for d in dims),
            )
        return [int(d) for d in override]
    error = dynamic_dim_error(vi.name, dims)
    if error is not None:
        raise error
    return [d if isinstance(d, int) else batch for d in dims]


def _eval_node(node: onnx.NodeProto, values: list[np.ndarray], opset: int) -> list[np.ndarray]:
    """Run one node on constant inputs with ONNX's reference implementation."""
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" for i in range(len(values))]
    inputs = [n if n else "" for n in node.input]
    mapping = {n: names[i] for i, n in enumerate(inputs) if n}
    copy = helper.make_node(node.op_type, [mapping.get(n, "") for n in inputs], list(node.output), domain=node.domain)
    copy.attribute.extend(node.attribute)
    feeds = {mapping[n]: values[i] for i, n in enumerate(inputs) if n}
    sess = ReferenceEvaluator(copy, opsets={"": opset})
    return [np.asarray(v) for v in sess.run(None, feeds)]


def _infer(proto: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    del proto.graph.value_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types; any failure is a model problem
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ConfigError(f"ONNX shape inference failed: {first}", "run the simplify pass first") from exc
    infos = {v.name: v for v in inferred.graph.value_info}
    infos.update({v.name: v for v in inferred.graph.input})
    infos.update({v.name: v for v in inferred.graph.output})
    return infos


def prepare(proto: onnx.ModelProto, batch: int = 1, input_shapes: dict[str, list[int]] | None = None) -> OnnxGraph:
    """Fix input shapes, fold constants (including Shape of static tensors) and infer every tensor's static shape."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    graph = model.graph
    constants: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constants]
    overrides = input_shapes or {}
    for vi in inputs:
        dims = input_shape(vi, batch, overrides.get(vi.name))
        shape = vi.type.tensor_type.shape
        del shape.dim[:]
        for d in dims:
            shape.dim.add().dim_value = d
    for out in graph.output:
        out.type.tensor_type.ClearField("shape")
    nodes = list(graph.node)
    infos: dict[str, onnx.ValueInfoProto] = {}
    for _ in range(_MAX_FOLD_ROUNDS):
        infos = _infer(model)
        remaining, folded = _fold(nodes, constants, infos, opset)
        nodes = remaining
        del graph.node[:]
        graph.node.extend(nodes)
        # Folded values become initializers so that shape inference sees them (the originals stay: unused is harmless).
        present = {i.name for i in graph.initializer}
        used = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
        graph.initializer.extend(
            numpy_helper.from_array(v, k) for k, v in constants.items() if k not in present and k in used
        )
        if not folded:
            break
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    for name, vi in infos.items():
        dims = _static_dims(vi)
        if vi.type.tensor_type.HasField("shape") and all(isinstance(d, int) for d in dims):
            shapes[name] = tuple(int(d) for d in dims)  # type: ignore[arg-type]
        dtypes[name] = _ONNX_TO_NP.get(vi.type.tensor_type.elem_type, "float32")
    for node in nodes:
        for name in list(node.input) + list(node.output):
            if name and name not in constants and name not in shapes:
                raise ConfigError(
                    f"tensor '{name}' of node '{node.name or node.op_type}' ({node.op_type}) has no static shape",
                    "give every input a static shape (--input-shape NAME:1,3,224,224) and run the simplify pass first",
                )
    for k, v in constants.items():
        dtypes[k] = str(v.dtype)
    outputs = [o.name for o in graph.output]
    for o in outputs:
        if o not in shapes and o not in constants:
            raise ConfigError(f"graph output '{o}' has no static shape", "run the simplify pass first")
    return OnnxGraph(nodes, constants, shapes, dtypes, [vi.name for vi in inputs], outputs, opset)


def _fold(
    nodes: list[onnx.NodeProto], constants: dict[str, np.ndarray], infos: dict[str, onnx.ValueInfoProto], opset: int
) -> tuple[list[onnx.NodeProto], bool]:
    """One folding sweep: Constant nodes, Shape of static tensors, nodes whose inputs are all constant."""
    remaining: list[onnx.NodeProto] = []
    folded = False
    for node in nodes:
        if node.op_type == "Constant":
            attr = {a.name: a for a in node.attribute}
            if "value" not in attr:
                raise ConfigError(f"Constant node '{node.name}' uses an unsupported attribute", "run simplify first")
            constants[node.output[0]] = numpy_helper.to_array(attr["value"].t)
            folded = True
            continue
        if node.op_type == "Shape" and node.input[0] in infos:
            dims = _static_dims(infos[node.input[0]])
            if all(isinstance(d, int) for d in dims) and infos[node.input[0]].type.tensor_type.HasField("shape"):
                start = next((a.i for a in node.attribute if a.name == "start"), 0)
                end = next((a.i for a in node.attribute if a.name == "end"), len(dims))
                constants[node.output[0]] = np.asarray(dims, dtype=np.int64)[start:end]
                folded = True
                continue
        ins = [n for n in node.input if n]
        if node.op_type not in _NEVER_FOLD and node.domain in ("", "ai.onnx") and ins and all(
            n in constants for n in ins
        ):
            values = [constants[n] if n else np.zeros(0) for n in node.input]
            for name, val in zip(node.output, _eval_node(node, values, opset), strict=False):
                constants[name] = val
            folded = True
            continue
        remaining.append(node)
    return remaining, folded
