"""TensorRT-ready explicit quantization: symmetric INT8 Q/DQ placed by the TensorRT rules table, from edgeopt's
calibration table (or, for a model that already carries Q/DQ, from its own scales re-emitted symmetric)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from pydantic import Field

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.backends.tensorrt.placement import (
    PLACEMENT,
    RESIDUAL_OPS,
    GraphIndex,
    Site,
    check_placement,
    fused_conv_branch,
    qdq_sites,
    residual_inputs,
)
from edgeopt.errors import ConfigError, EdgeoptError, ModelFileError
from edgeopt.passes.base import Pass, PassContext
from edgeopt.passes.onnx.common import drop_unused_initializers, save_onnx
from edgeopt.passes.onnx.fp16_typed import Fp16Typed
from edgeopt.passes.onnx.quantize import register_quantized_variants
from edgeopt.passes.registry import register_pass
from edgeopt.pipeline import step_name
from edgeopt.quant.config import AccuracyBudgetConfig
from edgeopt.quant.emit import EmitResult, QdqSpec
from edgeopt.quant.graph import name_nodes
from edgeopt.quant.record import attach
from edgeopt.quant.search import StaticSearch
from edgeopt.targets import Target, VariantSpec

log = logging.getLogger(__name__)

_QRANGE = {TensorProto.INT8: (-128, 127), TensorProto.UINT8: (0, 255), TensorProto.INT16: (-32768, 32767),
           TensorProto.UINT16: (0, 65535)}


class QdqTensorrtConfig(AccuracyBudgetConfig):
    """Range method over the calibration statistics and how many calibration samples to use (None: all), and the
    accuracy budget the build is checked against under ONNX Runtime (the fallback keeps the most sensitive nodes
    float, FP16 in the engine, until it holds)."""

    method: Literal["minmax", "entropy", "percentile", "mse"] = "minmax"
    percentile: float = 99.99
    samples: int | None = None
    bias_correction: bool = Field(False, description="correct each quantized Conv/Gemm bias for the mean shift INT8 "
                                  "causes at its output, measured on calibration samples")
    bias_correction_samples: int = Field(64, ge=1)
    exclude_nodes: list[str] = Field(default_factory=list, description="Conv/ConvTranspose/Gemm/MatMul nodes kept "
                                     "float (FP16 in the engine), by ONNX node name")
    threads: int | None = Field(None, ge=1, description="intra-op threads for calibration-side runs and evaluation")


def _rename_tensor(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename tensor `old` to `new` everywhere it is written or read."""
    _rename_reads(graph, old, new)
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new


def _fresh(graph: onnx.GraphProto, base: str) -> str:
    """A tensor name not used in the graph."""
    used = {t for n in graph.node for t in list(n.input) + list(n.output)} | {i.name for i in graph.initializer}
    used |= {i.name for i in graph.input}
    name, k = base, 0
    while name in used:
        k += 1
        name = f"{base}_{k}"
    return name


def _rename_reads(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Make every reader of tensor `old` read `new`."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _bypass_pair(graph: onnx.GraphProto, q: onnx.NodeProto, dq: onnx.NodeProto, index: GraphIndex) -> None:
    """Remove a Q->DQ pair on activation `q.input[0]`: readers of the DQ read the float tensor again."""
    src, out = q.input[0], dq.output[0]
    graph.node.remove(dq)
    if not any(c is not dq for c in index.consumers.get(q.output[0], [])):
        graph.node.remove(q)
    if out in index.outputs:  # keep the graph output's name: the float tensor takes it
        _rename_tensor(graph, src, out)
    else:
        _rename_tensor(graph, out, src)


def _dequantized(dq: onnx.NodeProto, index: GraphIndex) -> np.ndarray:
    """The float value of a DequantizeLinear of a constant."""
    x = index.constant(dq.input[0])
    scale = index.constant(dq.input[1])
    if x is None or scale is None:
        raise ModelFileError(f"DequantizeLinear '{dq.name}' reads a non-constant tensor", "export the model again")
    zp = index.constant(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else np.zeros((), x.dtype)
    if scale.size > 1:
        axis = next((int(a.i) for a in dq.attribute if a.name == "axis"), 1) % x.ndim
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), np.asarray(zp).reshape(shape)
    return ((x.astype(np.float64) - np.asarray(zp, np.float64)) * scale).astype(np.float32)


def strip_qdq(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, tuple[float, float]]]:
    """The float model under a Q/DQ model, and the range each activation's scale and zero point cover (the ranges the
    model's author chose, e.g. by quantization-aware training, re-emitted symmetric later)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    ranges: dict[str, tuple[float, float]] = {}
    for _ in range(len(model.graph.node)):  # each round removes one Q/DQ pair or DQ of a constant
        index = GraphIndex(graph)
        dq = next((n for n in graph.node if n.op_type == "DequantizeLinear"), None)
        if dq is None:
            break
        q = index.producer.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear":
            src = q.input[0]
            scale = index.constant(q.input[1])
            qtype = index.elem_type(q.input[2]) if len(q.input) > 2 and q.input[2] else TensorProto.UINT8
            zp = index.constant(q.input[2]) if len(q.input) > 2 and q.input[2] else np.zeros(1)
            clamps_negatives = False
            if scale is not None and scale.size == 1 and qtype in _QRANGE and not index.is_constant(src):
                lo, hi = _QRANGE[qtype]
                z, s = float(np.ravel(zp)[0]), float(scale.ravel()[0])
                ranges[src] = (min((lo - z) * s, 0.0), max((hi - z) * s, 0.0))
                clamps_negatives = z == lo
            if clamps_negatives:
                # Zero point at the type's minimum: the pair did a ReLU (quantizers fold ReLUs into it); keep that.
                # A fresh name: the emitter later names its own tensors after the old DQ output.
                relu_out = dq.output[0] if dq.output[0] in index.outputs else _fresh(graph, f"{src}_relu")
                relu = onnx.helper.make_node("Relu", [src], [relu_out], name=relu_out)
                graph.node.insert(list(graph.node).index(dq), relu)
                graph.node.remove(dq)
                if not any(c is not dq for c in index.consumers.get(q.output[0], [])):
                    graph.node.remove(q)
                _rename_reads(graph, dq.output[0], relu_out)
                ranges[relu_out] = (0.0, ranges[src][1])
            else:
                _bypass_pair(graph, q, dq, index)
            continue
        value = _dequantized(dq, index)
        graph.node.remove(dq)
        graph.initializer.append(numpy_helper.from_array(value, dq.output[0]))
    left = sorted({n.op_type for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")})
    if left:
        raise ModelFileError(
            f"the model has {', '.join(left)} nodes outside Q->DQ pairs (an INT8 tensor read by a float op)",
            "export the model in QDQ form (QuantizeLinear always followed by DequantizeLinear)",
        )
    drop_unused_initializers(graph)
    return out, {k: ranges[k] for k in sorted(ranges)}


def prune_to_sites(model: onnx.ModelProto, sites: list[Site]) -> int:
    """Remove the Q/DQ pairs (or the readers of them) the TensorRT table does not call for; returns pairs bypassed.

    The emitter also quantizes outputs of the ops it quantizes; TensorRT wants weighted-op outputs float and the
    Conv branch of a residual Add float, so only the marked (node, input) readers keep their DQ.
    """
    wanted = {(s.node, s.input_index) for s in sites}
    graph = model.graph
    removed = 0
    for _ in range(len(model.graph.node)):
        index = GraphIndex(graph)
        changed = False
        for dq in [n for n in graph.node if n.op_type == "DequantizeLinear"]:
            q = index.producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue  # a weight: kept, its reader is always a site
            readers = index.consumers.get(dq.output[0], [])
            keep = [(r, i) for r in readers for i, name in enumerate(r.input) if name == dq.output[0]
                    and (r.name, i) in wanted]
            if keep and len(keep) == sum(list(r.input).count(dq.output[0]) for r in readers):
                continue
            if not keep:
                _bypass_pair(graph, q, dq, index)
            else:
                for r in readers:
                    for i, name in enumerate(r.input):
                        if name == dq.output[0] and (r.name, i) not in wanted:
                            r.input[i] = q.input[0]
            removed += 1
            changed = True
            break
        if not changed:
            break
    drop_unused_initializers(graph)
    return removed


def _tensorrt_spec() -> QdqSpec:
    """The emitter's TensorRT spec over the ops the table places Q/DQ on (weighted ops and residual Adds)."""
    from edgeopt.quant.emit import TENSORRT

    return TENSORRT.model_copy(update={"op_types": sorted(set(PLACEMENT) | set(RESIDUAL_OPS)), "method": None})


class _TensorrtEmission:
    """Emits the TensorRT-ready model of one prepared float model for any set of float Conv/Gemm nodes: the
    emitter's Q/DQ, pruned to the sites of the TensorRT table, biases corrected when asked, placement checked."""

    def __init__(self, prepared: onnx.ModelProto, table: Any, ctx: PassContext, cfg: QdqTensorrtConfig) -> None:
        self.prepared, self.table, self.ctx, self.cfg = prepared, table, ctx, cfg
        self.index = index = GraphIndex(prepared.graph)
        self.residual = [n.name for n in prepared.graph.node if residual_inputs(n, index)]
        # Adds that are not residual joins stay float: TensorRT fuses Q/DQ into an Add only as a Conv+Add.
        self.others = [n.name for n in prepared.graph.node if n.op_type in RESIDUAL_OPS and n.name not in self.residual]
        self.linear = linear_nodes(prepared)
        self.spec = _tensorrt_spec()
        self.sites: dict[str, list[Site]] = {}  # by build label
        self.corrected: dict[str, dict[str, Any]] = {}

    def __call__(self, label: str, kept_float: list[str]) -> EmitResult:
        from edgeopt.quant.bias_correction import correct_biases
        from edgeopt.quant.emit import emit_qdq

        spec = self.spec.model_copy(update={"exclude_nodes": self.others + kept_float})
        result = emit_qdq(self.prepared, self.table, spec, self.ctx.work_dir)
        sites = qdq_sites(self.prepared, frozenset(kept_float))
        prune_to_sites(result.model, sites)
        if self.cfg.bias_correction:
            result.model, self.corrected[label] = correct_biases(self.prepared, result.model, self.ctx.calibration,
                                                                 self.cfg.bias_correction_samples, self.cfg.threads)
        problems = check_placement(result.model, frozenset(kept_float))
        if problems:
            raise EdgeoptError(f"qdq_tensorrt left {len(problems)} placement problems, first: {problems[0]}",
                               "report this model to the edgeopt developers")
        self.sites[label] = sites
        return EmitResult(result.model, spec, quantized_nodes=[n for n in self.linear if n not in kept_float],
                          float_nodes=list(kept_float))

    def fused_adds(self, kept_float: list[str]) -> int:
        """How many residual Adds have an INT8 Conv branch for TensorRT to fuse when `kept_float` stay float."""
        residual = set(self.residual)
        return sum(fused_conv_branch(n, self.index, frozenset(kept_float)) is not None
                   for n in self.prepared.graph.node if n.name in residual)


class _TensorrtSearch(StaticSearch):
    """StaticSearch's accuracy stage over the TensorRT emission: a node the fallback keeps float is one more
    exclude_nodes entry, built in FP16 by the engine builder."""

    def __init__(self, emission: _TensorrtEmission, evaluator: Any) -> None:
        super().__init__(emission.prepared, emission.table, emission.cfg,  # type: ignore[arg-type]
                         evaluator=evaluator, calibration=emission.ctx.calibration, timing_inputs=None,
                         work_dir=emission.ctx.work_dir)
        self.emission = emission

    def emit_model(self, label: str, spec: QdqSpec) -> EmitResult:
        return self.emission(label, list(spec.exclude_nodes))


def quantize_for_tensorrt(
    model: onnx.ModelProto, ctx: PassContext, cfg: QdqTensorrtConfig
) -> tuple[onnx.ModelProto, list[str]]:
    """The TensorRT-ready Q/DQ model and notes on what was done."""
    from edgeopt.passes.onnx.quantize_static import make_evaluator
    from edgeopt.quant.bias_correction import describe
    from edgeopt.quant.calibration_table import CalibrationTable
    from edgeopt.quant.emit import prepare_model
    from edgeopt.quant.graph import activation_tensors
    from edgeopt.quant.store import calibrate

    notes: list[str] = []
    float_model, model_ranges = strip_qdq(model)
    if model_ranges or len(float_model.graph.node) != len(model.graph.node):
        notes.append(f"qdq_tensorrt: the input carried Q/DQ; re-emitted symmetric INT8 from its scales "
                     f"({len(model_ranges)} activation ranges kept)")
    prepared = prepare_model(float_model, ctx.work_dir)
    name_nodes(prepared)
    kept_float = _float_nodes(prepared, cfg.exclude_nodes)
    tensors = activation_tensors(prepared, _tensorrt_spec().op_types_to_quantize())
    table = calibrate(prepared, ctx.calibration, method=cfg.method, percentile=cfg.percentile, samples=cfg.samples,
                      tensors=tensors, shared=ctx.shared)
    ranges = table.ranges(symmetric=True)
    for name, (lo, hi) in model_ranges.items():  # the model's own scales win over calibration
        if name in ranges:
            t = max(abs(lo), abs(hi))
            ranges[name] = (-t, t)
    fixed = CalibrationTable({}, cfg.method, fixed_ranges=ranges, samples=table.samples, data=table.data)
    emission = _TensorrtEmission(prepared, fixed, ctx, cfg)
    said: list[str] = []
    evaluator = make_evaluator(prepared, ctx, cfg, said)
    notes += [f"qdq_tensorrt: {n}" for n in said]
    search = _TensorrtSearch(emission, evaluator)
    chosen = search.accuracy_stage(search.emit("int8", emission.spec.model_copy(update={"exclude_nodes":
                                                                                     kept_float})))
    out = chosen.emitted.model
    float_nodes = list(chosen.spec.exclude_nodes)
    corrected = emission.corrected.get(chosen.label)
    if corrected is not None:
        notes.append("qdq_tensorrt: " + describe(corrected))
    sites = emission.sites[chosen.label]
    weights = sum(s.weight for s in sites)
    fused_adds = emission.fused_adds(float_nodes)
    accuracy = search.accuracy_record(chosen)
    attach(out, {"mode": "static", "format": "tensorrt", "activation_type": "int8", "activation_symmetric": True,
                 "method": cfg.method, "activation_sites": len(sites) - weights, "weight_sites": weights,
                 "residual_adds": fused_adds, "samples": table.samples, "bias_correction": corrected,
                 "float_nodes": float_nodes, "chosen": chosen.label, **accuracy}, fixed)
    notes.append(
        f"qdq_tensorrt: {len(sites) - weights} activation inputs per-tensor, {weights} weights per-channel, INT8 "
        f"zero point 0, biases float ({fused_adds} residual Adds keep their Conv branch float for Conv+Add "
        "fusion); ops left in float are built in FP16 (weakly typed: --int8 --fp16; strongly typed: pass fp16_typed)"
    )
    if kept_float:
        notes.append(f"qdq_tensorrt: {len(kept_float)} nodes kept float as asked (exclude_nodes): "
                     f"{', '.join(kept_float)}")
    if chosen.score is not None and evaluator is not None:
        sc = chosen.score
        notes.append(f"qdq_tensorrt: {evaluator.describe()} under ONNX Runtime (a stand-in for the engine's INT8 "
                     f"arithmetic): FP32 {evaluator.float_value * 100:.2f}%, INT8 {sc.value * 100:.2f}% "
                     f"(drop {sc.drop_points:.2f} points, budget {cfg.max_accuracy_drop:g})")
    notes.extend(f"qdq_tensorrt: {n}" for n in search.notes)
    for warning in search.warnings:
        log.warning("qdq_tensorrt: %s", warning)
    return out, notes


def linear_nodes(model: onnx.ModelProto) -> list[str]:
    """The names of the model's Conv/ConvTranspose/Gemm/MatMul nodes, in graph order: the nodes that can be kept
    float."""
    return [n.name for n in model.graph.node if n.op_type in PLACEMENT]


def _float_nodes(model: onnx.ModelProto, names: list[str]) -> list[str]:
    """The asked-for float nodes, checked: each must be a Conv/ConvTranspose/Gemm/MatMul of the model."""
    linear = linear_nodes(model)
    unknown = sorted(set(names) - set(linear))
    if unknown:
        shown = ", ".join(linear[:40]) + (f" ... ({len(linear)} in all)" if len(linear) > 40 else "")
        raise ConfigError(f"qdq_tensorrt exclude_nodes: {', '.join(unknown)} is not a Conv/ConvTranspose/Gemm/MatMul "
                          f"node of the model (they are: {shown})", "name nodes from that list")
    return sorted(set(names))


@register_pass
class QdqTensorrt(Pass):
    """ONNX -> ONNX with symmetric INT8 Q/DQ where TensorRT fuses it (explicit quantization)."""

    name = "qdq_tensorrt"
    version = "6"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.ONNX
    Config = QdqTensorrtConfig
    needs_calibration = True
    preserves_semantics = False  # INT8 changes numbers; accuracy and fidelity are measured after the build
    tools = ("onnx", "onnxruntime")

    def cache_extra(self, ctx: PassContext) -> dict[str, Any]:
        """Calibration data, plus the evaluation data when the accuracy budget is judged on it."""
        from edgeopt.passes.onnx.quantize_static import decision_inputs

        return {**super().cache_extra(ctx), **decision_inputs(self.config, ctx)}

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        if not isinstance(model, OnnxModel):
            raise TypeError("qdq_tensorrt takes an OnnxModel")
        cfg: QdqTensorrtConfig = self.config  # type: ignore[assignment]
        proto, notes = quantize_for_tensorrt(model.proto, ctx, cfg)
        proto.producer_name, proto.producer_version = "edgeopt", ""
        save_onnx(proto, out_path)
        ctx.shared.setdefault("notes", []).extend(notes)
        return OnnxModel.from_file(out_path)


@register_quantized_variants("tensorrt")
def tensorrt_variants(target: Target, cfg: Any) -> list[VariantSpec]:
    """`--quantize static|auto` adds 'int8': symmetric Q/DQ placed for TensorRT fusion, from the calibration table."""
    if cfg.quantize not in ("static", "auto"):
        return []
    fp16 = next((v for v in target.variants if v.precision == "fp16"), None)
    steps = list(fp16.passes) if fp16 is not None else ["dynamic_batch", "simplify"]
    # Typing comes last: calibration and placement work on the FP32 graph, which then gets FP16 types and scales.
    chain = [s for s in steps if step_name(s) != Fp16Typed.name]
    typing = [s for s in steps if step_name(s) == Fp16Typed.name]
    cal = {"method": cfg.calibration_method, "bias_correction": cfg.bias_correction,
           "max_accuracy_drop": cfg.max_accuracy_drop, "metric": cfg.metric, "eval_samples": cfg.eval_samples,
           "threads": cfg.latency.threads}
    if cfg.calibration_samples:
        cal["samples"] = cfg.calibration_samples
    return [
        VariantSpec(
            name="int8",
            precision="int8",
            passes=[*chain, {"qdq_tensorrt": cal}, *typing],
            description="symmetric INT8 Q/DQ placed for TensorRT fusion; float ops built in FP16",
        )
    ]
