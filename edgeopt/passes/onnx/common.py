"""Helpers shared by ONNX passes: deterministic saving and tensor lookups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

_TWO_GB = 2**31 - 1


def save_onnx(proto: onnx.ModelProto, path: Path) -> None:
    """Save a model as one file with deterministic bytes (no timestamps; stable field order)."""
    if proto.ByteSize() > _TWO_GB:
        onnx.save(proto, str(path), save_as_external_data=True, location=path.name + ".data")
        return
    path.write_bytes(proto.SerializeToString(deterministic=True))


def constant_value(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    """The value of an initializer or Constant-node output, or None if `name` is computed at run time."""
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
    return None


def drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """Remove initializers that no node reads and no graph output names (after a rewrite orphaned them)."""
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def consumers(graph: onnx.GraphProto, name: str) -> list[onnx.NodeProto]:
    """Nodes that read tensor `name` (check before rewriting a tensor that others still use)."""
    return [n for n in graph.node if name in n.input]
