"""FP16-typed ONNX for strongly typed TensorRT builds (TensorRT 11, and TensorRT 10 with `--stronglyTyped`).

A strongly typed TensorRT network takes every layer's precision from the ONNX tensor types: there are no FP16/INT8
builder flags (TensorRT 11 removed them). So the float model must itself be FP16, and a Q/DQ model must carry FP16
scales, which ONNX allows from opset 19 on. This pass upgrades the opset where needed, converts float tensors,
initializers and Q/DQ scales to FP16 with ONNX Runtime's converter (`onnxruntime.transformers.float16`), keeps the
graph inputs and outputs FP32 (Casts at the edges, so callers feed the same arrays), and keeps in FP32 any node named
in `keep_fp32` and any node whose float inputs or outputs reach beyond `max_abs` on sample data (the calibration set,
else the evaluation set): FP16 overflows at 65504, and an overflow would be an Inf, not a rounding. int8 weights stay
as they are, except behind a per-channel scale FP16 cannot hold (near-dead channels), where they are re-rounded.

The pipeline checks the result under ONNX Runtime like every pass, but ORT's CPU provider computes most FP16 ops in
FP32 behind Casts it inserts: the check covers the FP16 weights, scales and Casts, not FP16 arithmetic.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper, version_converter
from pydantic import Field

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.errors import ConfigError
from edgeopt.passes.base import Pass, PassConfig, PassContext
from edgeopt.passes.onnx.common import save_onnx
from edgeopt.passes.registry import register_pass

log = logging.getLogger(__name__)

#: ONNX opset from which QuantizeLinear / DequantizeLinear take FP16 scales.
FP16_QDQ_OPSET = 19
_FP16_MAX = float(np.finfo(np.float16).max)
_FP16_SMALLEST = float(np.finfo(np.float16).smallest_subnormal)

# Output check against the FP32-typed input: FP16 arithmetic on a float model; on a Q/DQ model FP16 scales and sums
# also move some activations across an int8 rounding boundary, one step each.
_FLOAT_TOLERANCE = (2e-2, 0.999)
_QDQ_TOLERANCE = (0.1, 0.99)


class Fp16TypedConfig(PassConfig):
    """Nodes kept FP32: named ones, and those whose values reach beyond `max_abs` on `samples` sample inputs."""

    keep_fp32: list[str] = Field(default_factory=list,
                                 description="ONNX node names (see `edgeopt inspect MODEL --nodes`) that stay FP32")
    max_abs: float = Field(8192.0, gt=0, le=_FP16_MAX,
                           description="a node whose float inputs or outputs reach beyond this on the samples stays "
                                       "FP32 (FP16's largest value is 65504; the margin covers data the samples miss)")
    samples: int = Field(64, ge=1, description="sample inputs the value ranges are measured on")


def _range_data(ctx: PassContext) -> Any:
    """The data the value ranges are measured on: calibration, else evaluation, else None."""
    return ctx.calibration if ctx.calibration is not None else ctx.eval_data


def overflowing_nodes(proto: onnx.ModelProto, data: Any, max_abs: float, samples: int) -> dict[str, float]:
    """{node name: largest |value| among its float inputs and outputs} for the nodes beyond `max_abs` on `data`."""
    from edgeopt.quant.collector import collect_statistics

    inferred = onnx.shape_inference.infer_shapes(proto)
    values = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    floats = {v.name for v in values if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    computed = floats & {o for n in proto.graph.node for o in n.output}
    tensors = sorted(computed | (floats & {i.name for i in proto.graph.input}))
    stats = collect_statistics(proto, data, tensors, samples=min(samples, len(data)), num_bins=16).stats
    peaks = {t: max(abs(st.min), abs(st.max)) for t, st in stats.items()}
    out: dict[str, float] = {}
    for node in proto.graph.node:
        beyond = [peaks[t] for t in (*node.input, *node.output) if peaks.get(t, 0.0) > max_abs]
        if beyond:
            out[node.name] = max(beyond)
    return out


def is_fp16_typed(proto: onnx.ModelProto) -> bool:
    """Whether the model carries FP16 tensors (a strongly typed build then computes in FP16)."""
    f16 = onnx.TensorProto.FLOAT16
    if any(i.data_type == f16 for i in proto.graph.initializer):
        return True
    values = [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]
    if any(v.type.tensor_type.elem_type == f16 for v in values):
        return True
    return any(n.op_type == "Cast" and any(a.name == "to" and a.i == f16 for a in n.attribute)
               for n in proto.graph.node)


def _default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _fp16_scale(scale: np.ndarray) -> np.ndarray:
    """The scale as FP16 holds it (ORT's converter lifts anything below FP16's smallest subnormal to it)."""
    return np.clip(np.abs(scale), _FP16_SMALLEST, _FP16_MAX).astype(np.float16).astype(np.float32) * np.sign(scale)


def requantize_for_fp16_scales(proto: onnx.ModelProto) -> int:
    """Re-round the int8 weights behind each scale FP16 cannot hold to 1/256 (subnormal or below FP16's range: in
    practice the near-dead channels of a BatchNorm-folded layer, scales near 1e-9) against the scale FP16 does hold,
    so that code x scale stays the weight. Returns how many channels changed; the model is edited in place."""
    inits = {i.name: i for i in proto.graph.initializer}
    changed = 0
    for node in proto.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 2:
            continue
        codes, scale = inits.get(node.input[0]), inits.get(node.input[1])
        if codes is None or scale is None or codes.data_type != onnx.TensorProto.INT8 \
                or scale.data_type != onnx.TensorProto.FLOAT:
            continue
        s32 = numpy_helper.to_array(scale).astype(np.float32)
        s16 = _fp16_scale(s32)
        off = np.abs(s16 - s32) > np.abs(s32) / 256
        if not off.any():
            continue
        q = numpy_helper.to_array(codes).astype(np.float32)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [-1 if d == (axis % q.ndim) else 1 for d in range(q.ndim)] if s32.ndim else []
        q = np.clip(np.round(q * s32.reshape(shape) / s16.reshape(shape)), -127, 127).astype(np.int8)
        codes.CopyFrom(numpy_helper.from_array(q, codes.name))
        scale.CopyFrom(numpy_helper.from_array(s16.astype(np.float32), scale.name))
        changed += int(off.sum())
    return changed


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def _drop_round_trips(proto: onnx.ModelProto) -> int:
    """Remove FP32 -> FP16 -> FP32 Cast pairs. The converter wraps each FP32 node in its own Casts, so between two
    adjacent FP32 nodes the tensor would pass through FP16, and a value beyond 65504 would become Inf there. Returns
    how many pairs went."""
    graph = proto.graph
    inferred = onnx.shape_inference.infer_shapes(proto)
    fp32 = {v.name for v in [*inferred.graph.value_info, *inferred.graph.input]
            if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    fp32 |= {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    producer = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    for node in graph.node:
        first = producer.get(node.input[0]) if _cast_to(node) == onnx.TensorProto.FLOAT else None
        if first is not None and _cast_to(first) == onnx.TensorProto.FLOAT16 and first.input[0] in fp32 \
                and node.output[0] not in outputs:
            rename[node.output[0]] = first.input[0]
    if not rename:
        return 0
    kept = [n for n in graph.node if not (n.op_type == "Cast" and n.output[0] in rename)]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    read = {i for n in kept for i in n.input} | outputs
    kept = [n for n in kept if _cast_to(n) != onnx.TensorProto.FLOAT16 or n.output[0] in read]  # orphaned Casts
    del graph.node[:]
    graph.node.extend(kept)
    return len(rename)


def to_fp16_typed(proto: onnx.ModelProto, keep_fp32: list[str] | tuple[str, ...] = (),
                  notes: list[str] | None = None) -> onnx.ModelProto:
    """The model with FP16 float tensors and Q/DQ scales, FP32 graph inputs and outputs, nodes in `keep_fp32` FP32.
    What it had to change besides the types is appended to `notes`."""
    import onnx_ir as ir
    from onnxruntime.transformers.float16 import convert_float_to_float16

    names = {n.name for n in proto.graph.node}
    unknown = sorted(set(keep_fp32) - names)
    if unknown:
        raise ConfigError(f"fp16_typed: keep_fp32 names nodes the model does not have: {', '.join(unknown)}",
                          "list the model's node names with `edgeopt inspect MODEL --nodes`")
    has_qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node)
    if has_qdq and _default_opset(proto) < FP16_QDQ_OPSET:
        proto = version_converter.convert_version(proto, FP16_QDQ_OPSET)
    else:
        proto = copy.deepcopy(proto)
    requantized = requantize_for_fp16_scales(proto)
    if requantized and notes is not None:
        notes.append(f"fp16_typed: {requantized} weight channels had scales FP16 cannot hold to 1/256 (near-dead "
                     "channels); their int8 weights were re-rounded against the FP16 scale")
    converted = convert_float_to_float16(proto, keep_io_types=True, force_fp16_initializers=False,
                                         node_block_list=list(keep_fp32) or None)
    _drop_round_trips(converted)
    model = ir.from_proto(converted)  # the converter appends its edge Casts last: put the nodes back in order
    model.graph.sort()
    return ir.to_proto(model)


@register_pass
class Fp16Typed(Pass):
    """Convert an ONNX model (float or Q/DQ) to FP16 tensor types for strongly typed TensorRT builds."""

    name = "fp16_typed"
    version = "1"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.ONNX
    Config = Fp16TypedConfig
    check_tolerance = _FLOAT_TOLERANCE
    tools = ("onnx", "onnxruntime")

    def cache_extra(self, ctx: PassContext) -> dict[str, Any]:
        data = _range_data(ctx)
        return {**super().cache_extra(ctx), "range_data": data.describe() if data is not None else None}

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        from edgeopt.backends.tensorrt.placement import is_quantized

        cfg: Fp16TypedConfig = self.config  # type: ignore[assignment]
        if not isinstance(model, OnnxModel):
            raise TypeError("fp16_typed converts ONNX models")
        # The check must suit what the pass changes (an instance attribute, set for every model it runs on).
        self.check_tolerance = _QDQ_TOLERANCE if is_quantized(model.proto) else _FLOAT_TOLERANCE  # type: ignore[misc]
        data = _range_data(ctx)
        notes = ctx.shared.setdefault("notes", [])
        keep = list(cfg.keep_fp32)
        if data is None:
            notes.append("fp16_typed: no calibration or evaluation data, so no value ranges were measured: a node "
                         "that overflows FP16 (beyond 65504) would give Inf; pass --calibration or --data")
        else:
            over = overflowing_nodes(model.proto, data, cfg.max_abs, cfg.samples)
            keep += [n for n in sorted(over) if n not in keep]
            said = ", ".join(f"{n} ({v:.3g})" for n, v in sorted(over.items())) or "none"
            notes.append(f"fp16_typed: nodes with values beyond {cfg.max_abs:g} on {min(cfg.samples, len(data))} "
                         f"samples kept FP32: {said}")
        if keep:
            log.info("fp16_typed: %d nodes stay FP32: %s", len(keep), ", ".join(keep))
        typed = to_fp16_typed(model.proto, keep, notes)
        onnx.checker.check_model(typed)
        save_onnx(typed, out_path)
        return OnnxModel.from_file(out_path)


__all__ = ["FP16_QDQ_OPSET", "Fp16Typed", "is_fp16_typed", "overflowing_nodes", "to_fp16_typed"]
