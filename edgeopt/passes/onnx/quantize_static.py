"""Static INT8 quantization for ONNX Runtime: calibrate once (streaming), emit Q/DQ (U8S8, per-channel weights),
keep the accuracy budget by leaving the most sensitive nodes float, and never hide an INT8 build slower than FP32."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import onnx

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.errors import ConfigError, DataError
from edgeopt.evaluate.machine import machine_info
from edgeopt.passes.base import Pass, PassContext
from edgeopt.passes.onnx.common import save_onnx
from edgeopt.passes.registry import register_pass
from edgeopt.quant.bias_correction import describe as describe_bias_correction
from edgeopt.quant.config import SpeedCheckConfig, StaticQuantizeConfig
from edgeopt.quant.emit import prepare_model
from edgeopt.quant.evaluation import QuantEvaluator
from edgeopt.quant.graph import COMPUTE_OPS, compute_nodes
from edgeopt.quant.record import attach
from edgeopt.quant.search import StaticSearch
from edgeopt.quant.store import calibrate

log = logging.getLogger(__name__)


def make_evaluator(model: onnx.ModelProto, ctx: PassContext, cfg: Any, notes: list[str]) -> QuantEvaluator | None:
    """The evaluator of `cfg`'s accuracy budget (max_accuracy_drop, metric, eval_samples, threads): eval data when
    given (labels or not), else the calibration data."""
    if cfg.max_accuracy_drop is None:
        notes.append("accuracy not checked (no accuracy budget set)")
        return None
    data, source = (ctx.eval_data, "evaluation") if ctx.eval_data is not None else (ctx.calibration, "calibration")
    if data is None:
        notes.append("accuracy not checked: no evaluation data")
        return None
    try:
        evaluator = QuantEvaluator(model, data, source=source, samples=cfg.eval_samples, threads=cfg.threads,
                                   use_labels=source == "evaluation", metric=cfg.metric)
    except (DataError, ConfigError):
        raise
    except Exception as exc:  # noqa: BLE001 - ORT's own message for data that does not fit
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise DataError(f"the {source} data does not run on the model ({first})",
                        f"check the {source} recipe's shape, layout and dtype against the model inputs") from exc
    if source == "calibration" and evaluator.metric != "cosine":
        notes.append("no evaluation data: the accuracy budget is checked as top-1 agreement with FP32 on the "
                     "calibration samples (fidelity, not accuracy)")
    elif evaluator.metric == "top1_agreement":
        notes.append("evaluation data has no labels: the accuracy budget is applied to top-1 agreement with FP32 "
                     "(fidelity fallback), not to accuracy")
    elif evaluator.metric == "cosine":
        notes.append(f"the budget is applied to 100 x (1 - mean per-sample cosine) against FP32 on the {source} data")
    return evaluator


def timing_inputs(model: Artifact, ctx: PassContext) -> dict[str, Any]:
    """One sample to time with: from the evaluation or calibration data, else random."""
    for data in (ctx.eval_data, ctx.calibration):
        if data is not None and len(data):
            return dict(data.take(1).inputs)
    return model.random_inputs(batch=1, seed=ctx.seed)


def no_quantizable_ops_error(model_name: str) -> ConfigError:
    """The error for a model without Conv/ConvTranspose/Gemm/MatMul."""
    return ConfigError(
        f"{model_name} has no ops that INT8 quantization speeds up ({', '.join(COMPUTE_OPS)})",
        "drop --quantize for this model",
    )


def decision_inputs(cfg: Any, ctx: PassContext) -> dict[str, Any]:
    """What besides the model decides a quantize pass's output: eval data (accuracy fallback), CPU (speed check)."""
    extra: dict[str, Any] = {}
    if cfg.max_accuracy_drop is not None and ctx.eval_data is not None:
        extra["eval"] = ctx.eval_data.describe()
    if isinstance(cfg, SpeedCheckConfig) and cfg.speed_check:  # without a speed check (qdq_tensorrt), no CPU
        info = machine_info(cfg.threads)
        extra["machine"] = {"cpu": info["cpu"], "isa": info["isa"], "threads": cfg.threads}
    return extra


@register_pass
class QuantizeStatic(Pass):
    """Static INT8 (QDQ or QOperator) for ONNX Runtime from a streaming calibration table."""

    name = "quantize_static"
    version = "1"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.ONNX
    Config = StaticQuantizeConfig
    needs_calibration = True
    preserves_semantics = False
    targets = ("ort-cpu", "tflite-cpu")
    tools = ("onnx", "onnxruntime")

    def cache_extra(self, ctx: PassContext) -> dict[str, Any]:
        """Calibration data, plus the evaluation data (fallback) and the CPU (speed remedies) when they decide."""
        return {**super().cache_extra(ctx), **decision_inputs(self.config, ctx)}

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        if not isinstance(model, OnnxModel):
            raise TypeError("quantize_static takes an OnnxModel")
        cfg: StaticQuantizeConfig = self.config  # type: ignore[assignment]
        if ctx.calibration is None:
            raise DataError("static quantization needs calibration data", "pass --calibration DATA")
        prepared = prepare_model(model.proto, ctx.work_dir)
        if not compute_nodes(prepared):
            raise no_quantizable_ops_error(str(model.path or "the model"))
        table = calibrate(
            prepared, ctx.calibration, method=cfg.method, percentile=cfg.percentile, samples=cfg.samples,
            batch_size=cfg.batch_size, threads=cfg.threads, shared=ctx.shared,
        )
        notes = [f"calibration: {cfg.method}{f' {cfg.percentile:g}' if cfg.method == 'percentile' else ''} "
                 f"on {table.samples} samples, {len(table.tensors)} tensors (streamed, one pass)"]
        evaluator = make_evaluator(prepared, ctx, cfg, notes)
        search = StaticSearch(
            prepared, table, cfg, evaluator=evaluator, calibration=ctx.calibration,
            timing_inputs=timing_inputs(model, ctx) if cfg.speed_check else None, work_dir=ctx.work_dir,
            seed=ctx.seed,
        )
        outcome = search.run()
        emitted = outcome.build.emitted
        spec = outcome.build.spec
        notes.append(
            f"quantized {len(emitted.quantized_nodes)} of {len(emitted.quantized_nodes) + len(emitted.float_nodes)} "
            f"compute nodes: {spec.activation_type} activations, {spec.weight_type} "
            f"{'per-channel' if spec.per_channel else 'per-tensor'} weights, {spec.format.upper()}"
        )
        if emitted.mask_nodes:
            notes.append(f"{len(emitted.mask_nodes)} nodes on additive attention masks (values near -3.4e38) kept "
                         f"float: an int8 range covering the mask would round every real value to one code "
                         f"({', '.join(emitted.mask_nodes[:4])}{', ...' if len(emitted.mask_nodes) > 4 else ''})")
        if emitted.protected_nodes:
            notes.append(f"{len(emitted.protected_nodes)} float Conv/Gemm nodes fed by a per-channel DequantizeLinear "
                         "so ONNX Runtime does not re-quantize their weights per-tensor at load")
        if outcome.build.score is not None and evaluator is not None:
            s = outcome.build.score
            notes.append(f"{evaluator.describe()}: FP32 {evaluator.float_value * 100:.2f}%, INT8 {s.value * 100:.2f}% "
                         f"(drop {s.drop_points:.2f} points, budget {cfg.max_accuracy_drop:g})")
        if cfg.bias_correction:
            corrected = outcome.record.get("bias_correction", {}).get(outcome.build.label)
            notes.append(describe_bias_correction(corrected) if corrected else
                         "bias correction not applied: it works on the QDQ form and the chosen build is QOperator")
        notes.extend(outcome.notes)
        for warning in outcome.warnings:
            log.warning("quantize_static: %s", warning)
        out = onnx.ModelProto()
        out.CopyFrom(emitted.model)
        attach(out, outcome.record, table)
        save_onnx(out, out_path)
        ctx.shared.setdefault("notes", []).extend(f"quantize_static: {n}" for n in notes)
        return OnnxModel.from_file(out_path)
