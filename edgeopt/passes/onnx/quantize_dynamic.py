"""Dynamic INT8 quantization for ONNX Runtime (int8 weights, activations quantized at run time): for MatMul/Gemm-heavy
models. On a conv-dominated model it measures and warns instead of silently shipping a slower build."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.evaluate.machine import machine_info
from edgeopt.passes.base import Pass, PassContext
from edgeopt.passes.onnx.common import save_onnx
from edgeopt.passes.onnx.quantize_static import decision_inputs, make_evaluator, no_quantizable_ops_error, timing_inputs
from edgeopt.passes.registry import register_pass
from edgeopt.quant.config import DynamicQuantizeConfig
from edgeopt.quant.emit import prepare_model
from edgeopt.quant.graph import mac_counts
from edgeopt.quant.record import attach
from edgeopt.quant.speed import FLOAT_BASELINE, time_builds

log = logging.getLogger(__name__)

CONV_DOMINATED = 0.5


def _quantize(prepared: onnx.ModelProto, cfg: DynamicQuantizeConfig, per_channel: bool, work_dir: Path
              ) -> onnx.ModelProto:
    """ONNX Runtime's quantize_dynamic of `prepared` with int8 weights (per-channel or per-tensor)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        save_onnx(prepared, src)
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=list(cfg.op_types), per_channel=per_channel,
                         reduce_range=cfg.reduce_range, weight_type=QuantType.QInt8,
                         nodes_to_exclude=list(cfg.exclude_nodes),
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fused contrib ops
        return onnx.load(str(dst))


@register_pass
class QuantizeDynamic(Pass):
    """ONNX Runtime dynamic quantization of MatMul/Gemm (and recurrent/attention) weights."""

    name = "quantize_dynamic"
    version = "2"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.ONNX
    Config = DynamicQuantizeConfig
    preserves_semantics = False
    targets = ("ort-cpu",)
    tools = ("onnx", "onnxruntime")

    def cache_extra(self, ctx: PassContext) -> dict[str, Any]:
        """The evaluation data and the CPU shape the notes and warnings recorded in the output."""
        return {**super().cache_extra(ctx), **decision_inputs(self.config, ctx)}

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        if not isinstance(model, OnnxModel):
            raise TypeError("quantize_dynamic takes an OnnxModel")
        cfg: DynamicQuantizeConfig = self.config  # type: ignore[assignment]
        prepared = prepare_model(model.proto, ctx.work_dir)
        inits = {i.name for i in prepared.graph.initializer}
        targets = [n for n in prepared.graph.node if n.op_type in cfg.op_types and n.name not in cfg.exclude_nodes
                   and (n.op_type != "Gather" or n.input[0] in inits)]  # a Gather counts when it reads a table
        if not any(n.op_type != "Gather" for n in targets):
            raise no_quantizable_ops_error(f"{model.path or 'the model'} (for dynamic quantization of "
                                           f"{', '.join(cfg.op_types)})")
        macs = mac_counts(prepared)
        total = sum(macs.values()) or 1
        covered = sum(v for k, v in macs.items() if k in cfg.op_types) / total
        conv_share = sum(v for k, v in macs.items() if k in ("Conv", "ConvTranspose")) / total
        notes = [f"dynamic INT8 of {len(targets)} nodes ({', '.join(sorted({n.op_type for n in targets}))}), "
                 f"covering {covered:.0%} of the multiply-accumulates"]
        diagnosis: list[str] = []
        record: dict[str, Any] = {"mode": "dynamic", "op_types": list(cfg.op_types), "mac_share": round(covered, 4),
                                  "conv_mac_share": round(conv_share, 4), "nodes": len(targets)}
        quantized = _quantize(prepared, cfg, cfg.per_channel, ctx.work_dir)
        record["per_channel"] = cfg.per_channel
        if conv_share > CONV_DOMINATED:
            msg = (f"conv-dominated model ({conv_share:.0%} of MACs in convolutions): dynamic INT8 covers only "
                   f"{covered:.0%} of the compute; use static quantization (--quantize static) for speed")
            diagnosis.append(msg)
            notes.append(msg)
        evaluator = make_evaluator(prepared, ctx, cfg, notes)
        if evaluator is not None:
            score = evaluator.score(quantized)
            record["score"] = score.to_dict()
            notes.append(f"{evaluator.describe()}: drop {score.drop_points:.2f} points")
            budget = cfg.max_accuracy_drop
            if budget is not None and score.drop_points > budget and not cfg.per_channel:
                # The usual culprit is per-tensor weight scales on layers with uneven channels: retry per-channel.
                retry = _quantize(prepared, cfg, True, ctx.work_dir)
                retry_score = evaluator.score(retry)
                notes.append(f"per-tensor weights exceed the {budget:g}-point budget ({score.drop_points:.2f}); "
                             f"per-channel weights: drop {retry_score.drop_points:.2f} points")
                if retry_score.drop_points < score.drop_points:
                    quantized, score = retry, retry_score
                    record.update(per_channel=True, per_tensor_score=record["score"], score=score.to_dict())
                    notes.append("kept per-channel weights (accuracy fallback)")
            if budget is not None and score.drop_points > budget:
                msg = f"dynamic INT8 exceeds the {budget:g}-point budget ({score.drop_points:.2f})"
                notes.append(msg)
                log.warning("quantize_dynamic: %s", msg)
        if cfg.speed_check:
            lat = time_builds({FLOAT_BASELINE: prepared, "int8": quantized}, timing_inputs(model, ctx), cfg.threads,
                              iters=cfg.timing_iters, max_seconds=cfg.timing_seconds, seed=ctx.seed)
            speedup = lat.speedup("int8") or 0.0
            fp32_ms, int8_ms = (float(np.median(lat.samples_ms[k])) for k in (FLOAT_BASELINE, "int8"))
            record["speed"] = {"fp32_ms": round(fp32_ms, 4), "int8_ms": round(int8_ms, 4), "speedup": round(speedup, 3)}
            notes.append(f"speed: INT8 {int8_ms:.3f} ms vs FP32 {fp32_ms:.3f} ms, {speedup:.2f}x")
            if speedup < cfg.min_speedup:
                diagnosis.insert(0, f"dynamic INT8 runs at {speedup:.2f}x the speed of FP32 on this machine")
                diagnosis.append("dynamic quantization adds a min/max scan and a quantize step per quantized input "
                                 "at run time")
                if not machine_info().get("int8_dot_product"):
                    diagnosis.append("this CPU has no VNNI int8 dot-product instructions")
                log.warning("quantize_dynamic: INT8 is not faster than FP32 (%.2fx): %s", speedup, diagnosis[1])
        if diagnosis and (not cfg.speed_check or record.get("speed", {}).get("speedup", 0.0) < cfg.min_speedup):
            record["diagnosis"] = diagnosis
        attach(quantized, record)
        save_onnx(quantized, out_path)
        ctx.shared.setdefault("notes", []).extend(f"quantize_dynamic: {n}" for n in notes)
        return OnnxModel.from_file(out_path)
