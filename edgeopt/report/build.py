"""Assemble report.json (schema edgeopt.report/1) and manifest.json from built and measured variants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.cache import tool_versions
from edgeopt.evaluate.machine import machine_info, machine_summary
from edgeopt.evaluate.variants import REFERENCE, Measurements
from edgeopt.fileio import write_json_atomic, write_text_atomic
from edgeopt.quant.record import report_fields
from edgeopt.report.frontier import build_frontier
from edgeopt.report.html import render_html
from edgeopt.report.markdown import render_markdown
from edgeopt.report.recommend import recommend

SCHEMA = "edgeopt.report/1"


#: ops that make an ONNX model given as the reference an INT8 one (Q/DQ or ONNX Runtime's integer operator format)
_INT8_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                       "MatMulInteger", "DynamicQuantizeLinear"})


def _reference_precision(source: Artifact) -> str:
    """The precision of the model as given: int8 for an ONNX model that carries quantized ops, else fp32."""
    if _INT8_OPS & set(source.op_histogram()):
        return "int8"
    return "fp32"


def _reference_row(source: Artifact, m: dict[str, Any]) -> dict[str, Any]:
    target = "pytorch" if source.kind == ArtifactKind.TORCH else "ort-cpu"
    return {
        "name": REFERENCE,
        "target": target,
        "precision": _reference_precision(source),
        "status": "ok" if not m.get("error") else f"failed: {m['error']}",
        "artifact": str(source.path) if source.path is not None else None,
        "size_bytes": source.size_bytes(),
        "accuracy": m.get("accuracy"),
        "fidelity": None,
        "latency_ms": m.get("latency_ms"),
        "speedup_vs_baseline": m.get("speedup_vs_baseline"),
        "description": "the input model as given, on its own runtime",
    }


def build_report(result: Any, source: Artifact, meas: Measurements, data: Any) -> dict[str, Any]:
    """The report dict: machine, one row per variant (reference first), recommendation."""
    out_dir: Path = result.out
    rows = [_reference_row(source, meas.metrics.get(REFERENCE, {}))]
    for bv in result.variants:
        pv = bv.planned
        m = meas.metrics.get(pv.name, {})
        status = bv.status
        if status == "ok" and m.get("error"):
            status = f"failed: {m['error']}"
        row: dict[str, Any] = {
            "name": pv.name,
            "target": pv.target.name,
            "precision": pv.spec.precision,
            "status": status,
            "artifact": str(bv.artifact_path.relative_to(out_dir)) if bv.artifact_path else None,
            "size_bytes": bv.artifact_path.stat().st_size if bv.artifact_path and bv.artifact_path.exists() else None,
            "accuracy": m.get("accuracy"),
            "fidelity": m.get("fidelity"),
            "latency_ms": m.get("latency_ms") if status == "ok" else None,
            "speedup_vs_baseline": m.get("speedup_vs_baseline") if status == "ok" else None,
            "passes": [s.to_dict() for s in bv.result.steps] if bv.result else [],
            "notes": [n for s in (bv.result.steps if bv.result else []) for n in s.notes],
        }
        extra = dict(bv.extra)
        row["notes"] += extra.pop("notes", [])  # the backend's own notes (e.g. ops its parser lacks) follow the passes'
        row.update(extra)
        if bv.result is not None:  # quantization record and speed diagnosis ({} for unquantized builds)
            row.update(report_fields(bv.result.artifact, row))
        rows.append(row)
    machine = machine_info(meas.threads)
    rec = recommend(rows[1:], rows[0], result.config.max_accuracy_drop, result.config.metric)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "machine": {**machine, "summary": machine_summary(machine)},
        "model": source.summary() if hasattr(source, "summary") else {"kind": source.kind.value},
        "data": data.describe() if data is not None else None,
        "runtimes": meas.runtimes,
        "variants": rows,
        "recommended": rec["variant"],
        "recommendation": rec,
        "frontier": build_frontier(rows, rec["variant"], result.config.metric),
    }
    if getattr(result.config, "explore", None) is not None:
        from edgeopt.explore import explore_summary

        report["explore"] = explore_summary(result.config, result.plan, source.kind)
    return report


def build_manifest(result: Any, source: Artifact, report: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to reproduce the build: config, seed, input hash, tool versions, artifact hashes."""
    arts = {}
    for bv in result.variants:
        if bv.result is not None:
            arts[bv.planned.name] = {
                "path": report_path(bv.artifact_path, result.out),
                "sha256": bv.result.artifact.sha256,
                "provenance": [p.to_dict() for p in bv.result.artifact.provenance],
            }
    return {
        "schema": "edgeopt.manifest/1",
        "config": result.config.model_dump(mode="json"),
        "seed": result.config.seed,
        "input": {
            "kind": source.kind.value,
            "path": str(source.path) if source.path else None,
            "sha256": source.sha256,
        },
        "versions": tool_versions(
            ["edgeopt", "onnx", "onnxruntime", "onnxslim", "onnxsim", "torch", "ai-edge-litert", "tensorrt", "numpy"]
        ),
        "artifacts": arts,
    }


def report_path(path: Path | None, out: Path) -> str | None:
    """A path relative to the output folder, for portable reports."""
    return str(path.relative_to(out)) if path is not None else None


def write_reports(out_dir: Path, report: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Write report.json, report.md and manifest.json atomically."""
    write_json_atomic(out_dir / "report.json", report)
    write_json_atomic(out_dir / "manifest.json", manifest)
    write_text_atomic(out_dir / "report.md", render_markdown(report))
    write_text_atomic(out_dir / "report.html", render_html(report))
