"""Static INT8 as a search: the first build, then the accuracy-aware fallback (keep the most harmful nodes float,
step by step), then the speed check (time against FP32, diagnose, try the obvious remedies)."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeopt.quant.bias_correction import correct_biases
from edgeopt.quant.calibration_table import CalibrationTable
from edgeopt.quant.config import StaticQuantizeConfig
from edgeopt.quant.emit import EmitResult, QdqSpec, emit_qdq
from edgeopt.quant.evaluation import QuantEvaluator, Score
from edgeopt.quant.sensitivity import node_sqnr, rank_nodes
from edgeopt.quant.speed import FLOAT_BASELINE, diagnose, quantized_depthwise, time_builds

log = logging.getLogger(__name__)

_EPS_POINTS = 1e-9
REMEDY_MARGIN = 1.05
_DEPTHWISE = "keep depthwise convs float"
_QOPERATOR = "QOperator format"


@dataclass
class Build:
    """One emitted INT8 candidate and its score."""

    label: str
    spec: QdqSpec
    emitted: EmitResult
    score: Score | None = None

    def step_record(self) -> dict[str, Any]:
        return {"label": self.label, "float_nodes": list(self.spec.exclude_nodes),
                "score": self.score.to_dict() if self.score else None}


@dataclass
class SearchOutcome:
    """The chosen build, the JSON-ready record of the search, notes for the report and warnings."""

    build: Build
    record: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def base_spec(cfg: StaticQuantizeConfig) -> QdqSpec:
    """The ONNX Runtime Q/DQ spec a static config asks for."""
    return QdqSpec(
        activation_type=cfg.activation_type, activation_symmetric=cfg.activation_symmetric,
        per_channel=cfg.per_channel, op_types=cfg.op_types, exclude_op_types=list(cfg.exclude_op_types),
        exclude_nodes=list(cfg.exclude_nodes), format="qoperator" if cfg.format == "qoperator" else "qdq",
        quantize_bias=cfg.quantize_bias, reduce_range=cfg.reduce_range, method=cfg.method, percentile=cfg.percentile,
    )


class StaticSearch:
    """Runs the three stages over one prepared float model and its calibration table."""

    def __init__(
        self, model: onnx.ModelProto, table: CalibrationTable, cfg: StaticQuantizeConfig, *,
        evaluator: QuantEvaluator | None, calibration: Any, timing_inputs: dict[str, np.ndarray] | None,
        work_dir: Path, seed: int = 0,
    ) -> None:
        self.model, self.table, self.cfg = model, table, cfg
        self.evaluator, self.calibration, self.timing_inputs = evaluator, calibration, timing_inputs
        self.work_dir, self.seed = work_dir, seed
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.record: dict[str, Any] = {}

    def emit(self, label: str, spec: QdqSpec) -> Build:
        """Emit and (when there is an evaluator) score one candidate."""
        build = Build(label, spec, self.emit_model(label, spec))
        if self.evaluator is not None:
            build.score = self.evaluator.score(build.emitted.model)
        return build

    def emit_model(self, label: str, spec: QdqSpec) -> EmitResult:
        """The Q/DQ model of one candidate (bias-corrected when asked); other emissions override this."""
        emitted = emit_qdq(self.model, self.table, spec, self.work_dir)
        if self.cfg.bias_correction and spec.format == "qdq":
            emitted.model, record = correct_biases(
                self.model, emitted.model, self.calibration, self.cfg.bias_correction_samples, self.cfg.threads)
            self.record.setdefault("bias_correction", {})[label] = record
        return emitted

    def within(self, build: Build, budget: float | None) -> bool:
        return budget is None or build.score is None or build.score.drop_points <= budget + _EPS_POINTS

    def run(self) -> SearchOutcome:
        """First build, fallback, speed check; the record says what each stage did."""
        first = self.emit("int8", base_spec(self.cfg))
        chosen = self.accuracy_stage(first)
        if self.cfg.speed_check and self.timing_inputs is not None:
            chosen = self.speed_stage(chosen)
        self.record.update(self._summary(chosen))
        return SearchOutcome(chosen, self.record, self.notes, self.warnings)

    # -- accuracy ---------------------------------------------------------------------------------------------------
    def accuracy_stage(self, first: Build) -> Build:
        """Keep the most harmful nodes in float, step by step, until the build is within the budget."""
        budget = self.cfg.max_accuracy_drop if self.evaluator is not None else None
        steps = [first]
        self.record["steps"] = steps
        if first.score is None or self.within(first, budget):
            return first
        assert budget is not None
        qdq_first = first if first.spec.format == "qdq" else self.emit("int8-qdq", first.spec.model_copy(
            update={"format": "qdq"}))
        sqnr = node_sqnr(self.model, qdq_first.emitted.model, self.calibration, self.cfg.sensitivity_samples,
                         self.cfg.threads)
        self.record["sensitivity_db"] = {k: round(v, 3) for k, v in sqnr.items()}
        ranking = rank_nodes(sqnr)
        limit = max(1, math.floor(self.cfg.max_float_fraction * len(first.emitted.quantized_nodes)))
        for k in _fallback_counts(min(limit, len(ranking)), self.cfg.fallback_steps):
            kept = ranking[:k]
            spec = first.spec.model_copy(update={"exclude_nodes": sorted(set(first.spec.exclude_nodes) | set(kept))})
            build = self.emit(f"int8, {k} node{'s' if k > 1 else ''} float", spec)
            steps.append(build)
            log.info("fallback: %d nodes float -> drop %.3f points", k, build.score.drop_points if build.score else 0)
            if self.within(build, budget):
                self.notes.append(f"accuracy fallback: kept {k} most sensitive nodes float ({', '.join(kept[:8])}"
                                  f"{', ...' if k > 8 else ''}) to meet the {budget:g}-point budget")
                return build
        best = max(steps, key=lambda b: (b.score.value if b.score else 0.0, -len(b.spec.exclude_nodes)))
        msg = (f"INT8 could not meet the {budget:g}-point accuracy budget in {len(steps) - 1} fallback steps "
               f"(at most {limit} nodes float); kept the best build '{best.label}' "
               f"(drop {best.score.drop_points:.2f} points)" if best.score else "")
        self.warnings.append(msg)
        self.notes.append(msg)
        self.record["budget_met"] = False
        return best

    # -- speed ------------------------------------------------------------------------------------------------------
    def speed_stage(self, chosen: Build) -> Build:
        """Time against FP32; when INT8 is not faster, diagnose and try QOperator / float depthwise / exclusions."""
        cands: dict[str, Build] = {chosen.label: chosen}
        if self.cfg.format == "auto" and chosen.spec.format == "qdq":
            alt = self._variant(chosen, _QOPERATOR, {"format": "qoperator"})
            if alt is not None:
                cands[alt.label] = alt
        lat = self._time(cands)
        speed = {k: lat.speedup(k) or 0.0 for k in cands}
        best = self._fastest(cands, speed, chosen)
        fp32_ms = float(np.median(lat.samples_ms[FLOAT_BASELINE]))
        tried: list[str] = []
        if speed[best.label] < self.cfg.min_speedup:
            found, rt = diagnose(self.model, best.emitted.model, best.emitted.float_nodes, speed[best.label],
                                 fp32_ms, self.work_dir)
            self.record["diagnosis_before_remedies"] = found
            remedies = self._remedies(best, rt.unfused_consumers)
            if remedies:
                tried = [r.label for r in remedies]
                cands.update({r.label: r for r in remedies})
                lat = self._time(cands)
                speed = {k: lat.speedup(k) or 0.0 for k in cands}
                best = self._fastest(cands, speed, chosen)
                fp32_ms = float(np.median(lat.samples_ms[FLOAT_BASELINE]))
        int8_ms = float(np.median(lat.samples_ms[best.label]))
        self.record["speed"] = {
            "fp32_ms": round(fp32_ms, 4), "int8_ms": round(int8_ms, 4), "speedup": round(speed[best.label], 3),
            "threads": self.cfg.threads or os.cpu_count(), "remedies_tried": tried,
            "candidates": {k: round(v, 3) for k, v in sorted(speed.items())},
        }
        verdict = "faster" if speed[best.label] >= 1 else "SLOWER"
        self.notes.append(f"speed: INT8 {int8_ms:.3f} ms vs FP32 {fp32_ms:.3f} ms, {speed[best.label]:.2f}x "
                          f"({verdict}; interleaved, {lat.samples_ms[best.label].size} rounds, batch 1)")
        if best is not chosen:
            self.notes.append(f"faster alternative kept: {best.label} ({speed[chosen.label]:.2f}x -> "
                              f"{speed[best.label]:.2f}x vs FP32)")
        if speed[best.label] < self.cfg.min_speedup:
            found, _ = diagnose(self.model, best.emitted.model, best.emitted.float_nodes, speed[best.label],
                                fp32_ms, self.work_dir)
            if tried:
                found.append(f"remedies tried without reaching {self.cfg.min_speedup:g}x: {', '.join(tried)}")
            self.record["diagnosis"] = found
            warning = f"INT8 build is not faster than FP32 ({speed[best.label]:.2f}x): " + "; ".join(found[1:3])
            self.warnings.append(warning)
        return best

    def _variant(self, base: Build, label: str, update: dict[str, Any]) -> Build | None:
        spec = base.spec.model_copy(update=update)
        try:
            build = self.emit(f"{base.label}, {label}", spec)
        except Exception as exc:  # noqa: BLE001 - a remedy that cannot be built is skipped, and said so
            self.notes.append(f"speed remedy '{label}' could not be built ({type(exc).__name__})")
            return None
        return build

    def _remedies(self, best: Build, unfused: dict[str, int]) -> list[Build]:
        out: list[Build] = []
        if best.spec.format == "qdq":
            alt = self._variant(best, _QOPERATOR, {"format": "qoperator"})
            out += [alt] if alt else []
        dw = quantized_depthwise(self.model, best.emitted.float_nodes)
        if dw:
            alt = self._variant(best, _DEPTHWISE, {"exclude_nodes": sorted(set(best.spec.exclude_nodes) | set(dw))})
            out += [alt] if alt else []
        slow = sorted(k for k in unfused if not k.startswith(("QLinear", "Quantize", "Dequantize")))
        if slow:
            spec_types = sorted(set(best.spec.exclude_op_types) | set(slow))
            alt = self._variant(best, f"no Q/DQ on {', '.join(slow)}", {"exclude_op_types": spec_types})
            out += [alt] if alt else []
        return out

    def _time(self, cands: dict[str, Build]) -> Any:
        assert self.timing_inputs is not None
        models = {FLOAT_BASELINE: self.model, **{k: b.emitted.model for k, b in cands.items()}}
        return time_builds(models, self.timing_inputs, self.cfg.threads, iters=self.cfg.timing_iters,
                           max_seconds=self.cfg.timing_seconds, seed=self.seed)

    def _fastest(self, cands: dict[str, Build], speed: dict[str, float], chosen: Build) -> Build:
        """The fastest candidate that keeps the chosen build's accuracy (or its budget)."""
        budget = self.cfg.max_accuracy_drop
        floor = chosen.score.drop_points if chosen.score else None
        ok = [b for b in cands.values() if b is chosen or b.score is None or floor is None
              or b.score.drop_points <= max(floor, budget if budget is not None else floor) + _EPS_POINTS]
        # An alternative must beat the chosen build clearly: timing noise alone must not change the build.
        return max(ok, key=lambda b: speed[b.label] * (REMEDY_MARGIN if b is chosen else 1.0))

    def accuracy_record(self, chosen: Build) -> dict[str, Any]:
        """What the accuracy stage measured and chose: evaluation, scores, budget, and every step it tried."""
        steps = self.record.pop("steps", [])
        return {
            "evaluation": self.evaluator.describe() if self.evaluator else None,
            "float_score": round(self.evaluator.float_value, 6) if self.evaluator else None,
            "score": chosen.score.to_dict() if chosen.score else None,
            "budget_points": self.cfg.max_accuracy_drop if self.evaluator else None,
            "budget_met": self.record.get("budget_met", True) if self.evaluator else None,
            "steps": [b.step_record() for b in steps],
        }

    def _summary(self, chosen: Build) -> dict[str, Any]:
        e = chosen.emitted
        return {
            "mode": "static",
            "method": self.table.method,
            "percentile": self.table.percentile if self.table.method == "percentile" else None,
            "calibration_samples": self.table.samples,
            "spec": chosen.spec.model_dump(mode="json"),
            "chosen": chosen.label,
            "quantized_nodes": len(e.quantized_nodes),
            "float_nodes": e.float_nodes,
            "protected_nodes": e.protected_nodes,
            **self.accuracy_record(chosen),
        }


def _fallback_counts(limit: int, steps: int) -> list[int]:
    """How many nodes each fallback step keeps float: 1, 2, 4, ... up to `limit` (which is always tried last)."""
    if steps <= 0 or limit <= 0:
        return []
    counts: list[int] = []
    k = 1
    while k < limit and len(counts) < steps - 1:
        counts.append(k)
        k *= 2
    counts.append(limit)
    return counts
