"""ONNX model artifacts: safe loading (external data confined to the model folder), I/O specs, op histograms."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto

from edgeopt.artifacts.base import Artifact, ArtifactKind, PassRecord, TensorSpec
from edgeopt.errors import ModelFileError
from edgeopt.fileio import sha256_file

_ONNX_TO_NP = {
    TensorProto.FLOAT: "float32",
    TensorProto.FLOAT16: "float16",
    TensorProto.DOUBLE: "float64",
    TensorProto.INT64: "int64",
    TensorProto.INT32: "int32",
    TensorProto.INT8: "int8",
    TensorProto.UINT8: "uint8",
    TensorProto.BOOL: "bool",
}


def _all_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    """Every tensor of a graph: initializers, node attributes, and those of subgraphs (If/Loop/Scan bodies)."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def _check_external_data(proto: onnx.ModelProto, folder: Path) -> None:
    """Refuse external-data locations that escape the model's folder (path traversal)."""
    root = folder.resolve()
    for t in _all_tensors(proto.graph):
        if t.data_location != TensorProto.EXTERNAL:
            continue
        loc = next((e.value for e in t.external_data if e.key == "location"), "")
        target = (root / loc).resolve()
        if os.path.isabs(loc) or root not in target.parents:
            raise ModelFileError(
                f"ONNX tensor '{t.name}' points to external data '{loc}' outside the model's folder",
                "move the external data file next to the model and fix its location",
            )
        if not target.is_file():
            raise ModelFileError(
                f"ONNX tensor '{t.name}' needs external data file '{loc}', which is missing",
                "place the external data file next to the model",
            )


def load_onnx_proto(path: str | os.PathLike[str], load_external: bool = True) -> onnx.ModelProto:
    """Load and sanity-check an ONNX file, turning every failure into a one-line ModelFileError."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist", "check the path")
    if not path.is_file():
        raise ModelFileError(f"model path {path} is not a file", "pass the .onnx file itself")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and others
        raise ModelFileError(
            f"{path} is not a valid ONNX file ({type(exc).__name__})",
            "re-export the model; the file may be truncated or not ONNX",
        ) from exc
    if len(proto.graph.node) == 0 or not proto.opset_import:
        raise ModelFileError(
            f"{path} is not a valid ONNX model (no graph nodes or opset)",
            "re-export the model; the file may be truncated or not ONNX",
        )
    _check_external_data(proto, path.parent)
    if load_external:
        onnx.external_data_helper.load_external_data_for_model(proto, str(path.parent))
    return proto


def _value_info_spec(vi: onnx.ValueInfoProto) -> TensorSpec:
    tt = vi.type.tensor_type
    dims: list[int | str | None] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorSpec(vi.name, tuple(dims), _ONNX_TO_NP.get(tt.elem_type, "float32"))


def graph_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Real graph inputs (old opsets list initializers as inputs too)."""
    inits = {i.name for i in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in inits]


@dataclass
class OnnxModel(Artifact):
    """An ONNX file on disk."""

    _proto: onnx.ModelProto | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.kind = ArtifactKind.ONNX

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], provenance: tuple[PassRecord, ...] = ()) -> OnnxModel:
        """Open (and validate) an ONNX file."""
        path = Path(path)
        proto = load_onnx_proto(path)
        return cls(path=path, sha256=sha256_file(path), provenance=provenance, _proto=proto)

    @property
    def proto(self) -> onnx.ModelProto:
        if self._proto is None:
            assert self.path is not None
            self._proto = load_onnx_proto(self.path)
        return self._proto

    def input_specs(self) -> list[TensorSpec]:
        return [_value_info_spec(v) for v in graph_inputs(self.proto)]

    def output_specs(self) -> list[TensorSpec]:
        return [_value_info_spec(v) for v in self.proto.graph.output]

    def op_histogram(self) -> dict[str, int]:
        counts = collections.Counter(n.op_type for n in self.proto.graph.node)
        return dict(sorted(counts.items()))

    def parameter_count(self) -> int:
        total = 0
        for init in self.proto.graph.initializer:
            n = 1
            for d in init.dims:
                n *= d
            total += n
        return total

    def opset(self) -> int:
        return next((o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx")), 0)

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "path": str(self.path),
            "sha256": self.sha256,
            "opset": self.opset(),
            "inputs": [s.to_dict() for s in self.input_specs()],
            "outputs": [s.to_dict() for s in self.output_specs()],
            "ops": self.op_histogram(),
            "parameters": self.parameter_count(),
            "size_bytes": self.size_bytes(),
        }
