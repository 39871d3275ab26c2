"""Empirical bias correction (Nagel et al., "Data-Free Quantization", sec. 4.2, the data-driven variant).

Quantization shifts the mean of a layer's output: rounded weights no longer sum to the float ones, and clipped or
rounded activations carry a bias of their own into the next layer. For each quantized Conv / ConvTranspose / Gemm
with a bias, in graph order, the per-channel mean of its output is measured on calibration samples in the float model
and in the Q/DQ model (with the nodes before it already corrected), and the difference is taken off the bias. The
bias may be float (TensorRT form) or int32 behind a DequantizeLinear (ONNX Runtime form: the correction is rounded to
the bias's scale). Biases are fed as graph inputs while measuring, so one session serves every step.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgeopt.quant.graph import with_outputs
from edgeopt.quant.session import feeds, fixed_batch, ort_session, split

CORRECTED_OPS = ("Conv", "ConvTranspose", "Gemm")
_INT32 = np.iinfo(np.int32)


@dataclass
class _Site:
    """One bias to correct: the node, its output in both models, the tensor holding the bias and its int32 scale."""

    node: str
    q_output: str
    f_output: str
    tensor: str
    scale: np.ndarray | None  # None: a float bias


def _sites(float_model: onnx.ModelProto, qdq: onnx.ModelProto) -> tuple[list[_Site], list[str]]:
    """The biases that can be corrected, in graph order, and the names of quantized nodes skipped (no bias)."""
    g = qdq.graph
    producers = {o: n for n in g.node for o in n.output}
    inits = {i.name: i for i in g.initializer}
    readers = collections.Counter(i for n in g.node for i in n.input)
    float_nodes = {n.name: n for n in float_model.graph.node}
    sites: list[_Site] = []
    skipped: list[str] = []
    for node in g.node:
        if node.op_type not in CORRECTED_OPS or len(node.input) < 2:
            continue
        weight = producers.get(node.input[1])
        if weight is None or weight.op_type != "DequantizeLinear":
            continue  # a float node: nothing to correct
        ref = float_nodes.get(node.name)
        bias = node.input[2] if len(node.input) > 2 else ""
        if not bias or ref is None or readers[bias] != 1:
            skipped.append(node.name)
            continue
        if bias in inits:
            sites.append(_Site(node.name, node.output[0], ref.output[0], bias, None))
            continue
        dq = producers.get(bias)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits or dq.input[1] not in inits \
                or readers[dq.input[0]] != 1:
            skipped.append(node.name)
            continue
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
        sites.append(_Site(node.name, node.output[0], ref.output[0], dq.input[0], scale))
    return sites, skipped


def _channel_sum(x: np.ndarray) -> np.ndarray:
    """Sum over every axis but the channel axis (1)."""
    axes = tuple(i for i in range(x.ndim) if i != 1)
    return x.astype(np.float64).sum(axis=axes)


def _with_bias_inputs(qdq: onnx.ModelProto, tensors: list[str]) -> onnx.ModelProto:
    """A copy whose bias initializers are graph inputs instead (fed the current values at each run)."""
    out = onnx.ModelProto()
    out.CopyFrom(qdq)
    wanted = set(tensors)
    keep = [i for i in out.graph.initializer if i.name not in wanted]
    moved = [i for i in out.graph.initializer if i.name in wanted]
    del out.graph.initializer[:]
    out.graph.initializer.extend(keep)
    for init in moved:
        out.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    return out


def _means(session: Any, batches: list[dict[str, np.ndarray]], outputs: list[str], extra: dict[str, np.ndarray],
           max_batch: int | None) -> list[np.ndarray]:
    """Per-channel means of `outputs` over all batches."""
    sums: list[Any] = [0.0] * len(outputs)
    counts = [0] * len(outputs)
    for batch in batches:
        for piece in split(batch, max_batch):  # the biases are whole tensors, not cut with the batch
            vals = session.run(outputs, feeds(session, {**piece, **extra}))
            for k, v in enumerate(vals):
                sums[k] = sums[k] + _channel_sum(v)
                counts[k] += v.size // v.shape[1]
    return [s / max(c, 1) for s, c in zip(sums, counts, strict=True)]


def correct_biases(float_model: onnx.ModelProto, qdq: onnx.ModelProto, data: Any, samples: int = 64,
                   threads: int | None = None, batch_size: int = 16) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The Q/DQ model with its biases corrected on `samples` calibration samples, and a record of what was done.

    `float_model` must carry the same node names as `qdq` (the prepared model the Q/DQ model was emitted from)."""
    sites, skipped = _sites(float_model, qdq)
    record: dict[str, Any] = {"samples": 0, "corrected": 0, "skipped_no_bias": skipped, "largest_shifts": {}}
    if not sites:
        return qdq, record
    subset = data.subset(0, samples) if samples < len(data) else data
    batches = [dict(b.inputs) for b in subset.batches(batch_size)]
    record["samples"] = sum(len(next(iter(b.values()))) for b in batches)
    f_sess = ort_session(with_outputs(float_model, [s.f_output for s in sites]), threads, level="basic")
    f_inputs = {i.name for i in f_sess.get_inputs()}
    f_batches = [{k: v for k, v in b.items() if k in f_inputs} for b in batches]
    float_means = _means(f_sess, f_batches, [s.f_output for s in sites], {}, fixed_batch(f_sess))
    inits = {i.name: i for i in qdq.graph.initializer}
    values = {s.tensor: numpy_helper.to_array(inits[s.tensor]).copy() for s in sites}
    work = _with_bias_inputs(with_outputs(qdq, [s.q_output for s in sites]), list(values))
    q_sess = ort_session(work, threads, level="basic")
    q_max = fixed_batch(q_sess)
    shifts: dict[str, float] = {}
    for site, f_mean in zip(sites, float_means, strict=True):
        (q_mean,) = _means(q_sess, batches, [site.q_output], values, q_max)
        shift = q_mean - f_mean
        shifts[site.node] = float(np.max(np.abs(shift)))
        if site.scale is None:
            values[site.tensor] = (values[site.tensor].astype(np.float64) - shift).astype(values[site.tensor].dtype)
        else:
            steps = np.rint(shift / site.scale)
            corrected = values[site.tensor].astype(np.int64) - steps.astype(np.int64)
            values[site.tensor] = np.clip(corrected, _INT32.min, _INT32.max).astype(np.int32)
    out = onnx.ModelProto()
    out.CopyFrom(qdq)
    for init in out.graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(values[init.name], init.name))
    record["corrected"] = len(sites)
    top = sorted(shifts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    record["largest_shifts"] = {k: round(v, 6) for k, v in top}
    return out, record


def describe(record: dict[str, Any]) -> str:
    """The report line for a correction record."""
    largest = ", ".join(f"{k} {v:.3g}" for k, v in list(record["largest_shifts"].items())[:3])
    skipped = len(record["skipped_no_bias"])
    return (f"bias correction: {record['corrected']} biases corrected for the mean output shift measured on "
            f"{record['samples']} calibration samples (largest per-channel shifts: {largest or 'none'})"
            + (f"; {skipped} quantized nodes without a bias left as they are" if skipped else ""))
