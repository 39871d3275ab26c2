"""Per-node sensitivity: the SQNR of each quantized node's output when its inputs are the float model's exact values.

Feeding every activation QuantizeLinear from the float model's tensor (instead of the quantized upstream graph)
isolates each node: the noise measured at its output comes from its own input rounding, weight quantization and
output rounding only, not from the layers before it. One run of each model over a few calibration samples gives the
SQNR of every node at once; low SQNR means a harmful node.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgeopt.quant.graph import COMPUTE_OPS, initializer_names, with_outputs
from edgeopt.quant.session import fixed_batch, ort_session, run

SQNR_CAP_DB = 200.0
_REF = "__edgeopt_float_ref"


def _probe_points(qdq: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    """Quantized compute node -> (float tensor to compare, tensor of the isolated model to compare it with)."""
    g = qdq.graph
    producers = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = collections.defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
    points: dict[str, tuple[str, str]] = {}
    for node in g.node:
        if node.op_type not in COMPUTE_OPS or len(node.input) < 2:
            continue
        weight = producers.get(node.input[1])
        if weight is None or weight.op_type != "DequantizeLinear":
            continue  # a float node
        current = node.output[0]
        for _ in range(8):  # follow kept Relu/Clip to the output's QuantizeLinear
            nxt = consumers.get(current, [])
            if len(nxt) == 1 and nxt[0].op_type in ("Relu", "Clip"):
                current = nxt[0].output[0]
                continue
            break
        q = next((c for c in consumers.get(current, []) if c.op_type == "QuantizeLinear"), None)
        dq = next((c for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear"), None) if q else None
        points[node.name] = (current, dq.output[0] if dq is not None else current)
    return points


def _isolated(qdq: onnx.ModelProto, float_tensors: set[str]) -> tuple[onnx.ModelProto, list[str]]:
    """The Q/DQ model with every activation QuantizeLinear reading a new input fed with the float value."""
    out = onnx.ModelProto()
    out.CopyFrom(qdq)
    g = out.graph
    consts = initializer_names(g)
    existing_inputs = {i.name for i in g.input}
    refs: list[str] = []
    for node in g.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in consts or node.input[0] in existing_inputs:
            continue
        name = node.input[0]
        if name not in float_tensors:
            continue
        if name not in refs:
            refs.append(name)
            g.input.append(helper.make_tensor_value_info(name + _REF, TensorProto.FLOAT, None))
        node.input[0] = name + _REF
    return out, refs


def node_sqnr(float_model: onnx.ModelProto, qdq_model: onnx.ModelProto, data: Any, samples: int = 16,
              threads: int | None = None, batch_size: int = 8) -> dict[str, float]:
    """SQNR in dB of each quantized compute node of `qdq_model`, isolated from upstream error (capped at 200)."""
    points = _probe_points(qdq_model)
    if not points:
        return {}
    float_names = {o for n in float_model.graph.node for o in n.output} | {i.name for i in float_model.graph.input}
    # A graph output keeps its name on the DequantizeLinear (the quantizer renames the node's own output).
    points = {k: ((f if f in float_names else q), q) for k, (f, q) in points.items()}
    iso, refs = _isolated(qdq_model, float_names)
    wanted_float = sorted(set(refs) | {f for f, _ in points.values() if f in float_names})
    points = {k: v for k, v in points.items() if v[0] in float_names}
    iso_outputs = sorted({q for _, q in points.values()})
    f_sess = ort_session(with_outputs(float_model, wanted_float), threads, level="basic")
    q_sess = ort_session(with_outputs(iso, iso_outputs), threads, level="basic")
    signal = dict.fromkeys(points, 0.0)
    noise = dict.fromkeys(points, 0.0)
    subset = data.subset(0, samples) if samples < len(data) else data
    f_max, q_max = fixed_batch(f_sess), fixed_batch(q_sess)
    graph_inputs = [i.name for i in float_model.graph.input if i.name not in initializer_names(float_model.graph)]
    for batch in subset.batches(min(batch_size, f_max or batch_size)):
        fvals = dict(zip(wanted_float, run(f_sess, batch.inputs, wanted_float, f_max), strict=True))
        feed = {name: batch.inputs[name] for name in graph_inputs}
        feed.update({r + _REF: fvals[r] for r in refs})
        qvals = dict(zip(iso_outputs, _run_iso(q_sess, feed, iso_outputs, q_max), strict=True))
        for node, (f_name, q_name) in points.items():
            ref = fvals[f_name].astype(np.float64)
            err = qvals[q_name].astype(np.float64) - ref
            signal[node] += float(np.sum(ref * ref))
            noise[node] += float(np.sum(err * err))
    out: dict[str, float] = {}
    for node in sorted(points):
        if noise[node] <= 0.0:
            out[node] = SQNR_CAP_DB
        elif signal[node] <= 0.0:
            out[node] = -SQNR_CAP_DB
        else:
            out[node] = min(SQNR_CAP_DB, 10.0 * float(np.log10(signal[node] / noise[node])))
    return out


def _run_iso(session: Any, feed: dict[str, np.ndarray], outputs: list[str], max_batch: int | None) -> list[np.ndarray]:
    names = {i.name for i in session.get_inputs()}
    return run(session, {k: v for k, v in feed.items() if k in names}, outputs, max_batch)


def rank_nodes(sqnr: dict[str, float]) -> list[str]:
    """Node names from most to least harmful (lowest SQNR first; ties by name for determinism)."""
    return [name for name, _ in sorted(sqnr.items(), key=lambda kv: (kv[1], kv[0]))]
