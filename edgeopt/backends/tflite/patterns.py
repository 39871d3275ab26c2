"""Graph patterns rewritten before lowering, where one TFLite op does the work of several ONNX nodes."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper

from edgeopt.backends.tflite.graph import OnnxGraph

_MAX_ROUNDS = 16


def _const_scalar(graph: OnnxGraph, name: str) -> float | None:
    value = graph.constants.get(name)
    if value is None or value.size != 1 or value.dtype.kind != "f":
        return None
    return float(np.asarray(value).ravel()[0])


def _sole_consumer(graph: OnnxGraph, name: str, op: str) -> onnx.NodeProto | None:
    """The only node reading `name`, if it is an `op` and `name` is no graph output (else None)."""
    users = graph.consumers.get(name, [])
    if len(users) != 1 or users[0].op_type != op or name in graph.outputs:
        return None
    return users[0]


def _other(node: onnx.NodeProto, name: str) -> str | None:
    """The other input of a two-input node that reads `name` once."""
    ins = list(node.input)
    if len(ins) != 2 or ins.count(name) != 1:
        return None
    return ins[1] if ins[0] == name else ins[0]


def _near(value: float | None, target: float) -> bool:
    return value is not None and math.isclose(value, target, rel_tol=1e-4)


def _match_gelu(graph: OnnxGraph, erf: onnx.NodeProto, producers: dict[str, onnx.NodeProto]) -> tuple[
        str, str, list[onnx.NodeProto]] | None:
    """x * 0.5 * (1 + erf(x / sqrt(2))) in the orders exporters write it: (x, y, nodes to remove) or None."""
    pre = producers.get(erf.input[0])
    if pre is None or pre.op_type not in ("Div", "Mul") or _sole_consumer(graph, pre.output[0], "Erf") is None:
        return None
    x = pre.input[0]
    c = _const_scalar(graph, pre.input[1])
    if not (_near(c, math.sqrt(2.0)) if pre.op_type == "Div" else _near(c, 1 / math.sqrt(2.0))):
        return None
    add = _sole_consumer(graph, erf.output[0], "Add")
    if add is None or not _near(_const_scalar(graph, _other(add, erf.output[0]) or ""), 1.0):
        return None
    m1 = _sole_consumer(graph, add.output[0], "Mul")
    if m1 is None:
        return None
    other = _other(m1, add.output[0])
    removed = [pre, erf, add, m1]
    if other == x:  # (x * (1 + erf)) * 0.5
        m2 = _sole_consumer(graph, m1.output[0], "Mul")
        if m2 is None or not _near(_const_scalar(graph, _other(m2, m1.output[0]) or ""), 0.5):
            return None
        return x, m2.output[0], [*removed, m2]
    if _near(_const_scalar(graph, other or ""), 0.5):  # x * ((1 + erf) * 0.5)
        m2 = _sole_consumer(graph, m1.output[0], "Mul")
        if m2 is None or _other(m2, m1.output[0]) != x:
            return None
        return x, m2.output[0], [*removed, m2]
    half = producers.get(other or "")  # (x * 0.5) * (1 + erf)
    if half is not None and half.op_type == "Mul" and _sole_consumer(graph, half.output[0], "Mul") is m1:
        if _other(half, x) is not None and _near(_const_scalar(graph, _other(half, x) or ""), 0.5):
            return x, m1.output[0], [half, *removed]
    return None


def fuse_gelu(graph: OnnxGraph) -> int:
    """Replace erf-based GELU subgraphs by one Gelu node (lowered to TFLite GELU); returns how many."""
    fused = 0
    for _ in range(_MAX_ROUNDS):
        producers = {o: n for n in graph.nodes for o in n.output}
        match = next((m for n in graph.nodes if n.op_type == "Erf" and (m := _match_gelu(graph, n, producers))), None)
        if match is None:
            break
        x, y, removed = match
        ids = {id(n) for n in removed}
        last = max(i for i, n in enumerate(graph.nodes) if id(n) in ids)
        gelu = helper.make_node("Gelu", [x], [y], name=f"{removed[-1].name or y}_gelu")
        nodes = [n for i, n in enumerate(graph.nodes) if id(n) not in ids or i == last]
        graph.nodes = [gelu if id(n) in ids else n for n in nodes]
        graph.rebuild()
        fused += 1
    return fused
