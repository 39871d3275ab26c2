"""The recommendation rule and report.md, a view of report.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeopt.fileio import write_json_atomic
from edgeopt.report.build import SCHEMA, report_path, write_reports
from edgeopt.report.markdown import render_markdown
from edgeopt.report.recommend import recommend

HEADER = "| variant | target | precision | status | size MB | accuracy | latency ms median | speed-up vs baseline |"


def _row(name: str, top1: float | None, median: float, status: str = "ok", agree: float | None = None,
         cosine: float | None = None) -> dict[str, Any]:
    fidelity = None if agree is None and cosine is None else {"top1_agreement": agree, "cosine": cosine or 1.0,
                                                               "max_abs": 0.001}
    return {
        "name": name, "target": "ort-cpu", "precision": "fp32", "status": status, "size_bytes": 2_000_000,
        "accuracy": None if top1 is None else {"top1": top1, "n": 100}, "fidelity": fidelity,
        "latency_ms": {"median": median, "p90": median, "p99": median}, "speedup_vs_baseline": 2.0 / median,
    }


def test_fastest_within_the_accuracy_budget() -> None:
    ref = _row("reference", 0.90, 2.0)
    rows = [_row("a", 0.895, 1.5), _row("b", 0.85, 0.5), _row("c", 0.90, 3.0), _row("d", 0.99, 0.1, "failed: x")]
    rec = recommend(rows, ref, max_drop_points=1.0)
    assert rec["variant"] == "a"
    assert rec["rejected"] == ["b: top-1 drop 5.00 points > 1"]
    assert "within 1 points" in rec["rule"] and "1.33x" in rec["reason"]
    assert recommend(rows, ref, max_drop_points=10.0)["variant"] == "b"


def test_without_labels_agreement_and_cosine_decide() -> None:
    ref = _row("reference", None, 2.0)
    rows = [_row("a", None, 0.5, agree=0.95), _row("b", None, 0.8, cosine=0.99), _row("c", None, 1.0, agree=1.0)]
    rec = recommend(rows, ref, max_drop_points=1.0)
    assert rec["variant"] == "c" and len(rec["rejected"]) == 2
    assert "agreement" in rec["rule"]


def test_slower_and_none() -> None:
    ref = _row("reference", 0.9, 1.0)
    rec = recommend([{**_row("slow", 0.9, 2.0), "speedup_vs_baseline": 0.5}], ref, 1.0)
    assert rec["variant"] == "slow" and "0.50x" in rec["reason"] and "SLOWER" in rec["reason"]
    none = recommend([_row("bad", 0.5, 0.1)], ref, 1.0)
    assert none["variant"] is None and none["reason"] == "no build met the rule"
    untimed = {**_row("trt-gpu/int8", 0.9, 0.1, status="engine not built: TensorRT not installed"), "latency_ms": None}
    nothing = recommend([untimed], ref, 1.0)
    assert nothing["variant"] is None and nothing["reason"].startswith("no build was timed on this machine")


def _report() -> dict[str, Any]:
    ref = {**_row("reference", 0.9, 2.0), "target": "pytorch", "speedup_vs_baseline": 1.0}
    fast = {**_row("ort-cpu/fp32", 0.9, 1.0, agree=1.0), "notes": ["dynamic_batch: already dynamic"],
            "passes": [{"pass": "simplify", "wall_s": 0.1, "cached": True, "size_bytes": 2_000_000,
                        "config": {}, "check": {"max_abs": 1e-7, "cosine": 1.0, "ok": True}}]}
    failed = {**_row("tflite-cpu/fp32", None, 1.0, status="not run: no runtime"), "size_bytes": None,
              "latency_ms": None, "speedup_vs_baseline": None}
    return {"schema": SCHEMA, "machine": {"summary": "Test CPU (x86_64, 2 cores)"}, "model": {"path": "m.onnx",
            "kind": "onnx", "sha256": "ab" * 32}, "data": {"source": "d.npz", "n": 100},
            "variants": [ref, fast, failed], "recommended": "ort-cpu/fp32",
            "recommendation": recommend([fast, failed], ref, 1.0)}


def test_markdown_table() -> None:
    md = render_markdown(_report())
    lines = md.splitlines()
    assert lines[lines.index(HEADER) + 1] == "|---|---|---|---|---|---|---|---|"
    rows = [line for line in lines if line.startswith("| ") and line != HEADER]
    assert rows[0] == "| reference | pytorch | fp32 | ok | 2.000 | 90.00% | 2.000 | 1.00x |"
    assert rows[1] == "| ort-cpu/fp32 **(recommended)** | ort-cpu | fp32 | ok | 2.000 | 90.00% | 1.000 | 2.00x |"
    assert rows[2] == "| tflite-cpu/fp32 | ort-cpu | fp32 | not run: no runtime | - | - | - | - |"
    assert "Machine: Test CPU (x86_64, 2 cores)" in md and "**Recommended:** ort-cpu/fp32" in md
    assert "- pass `simplify`: 0.10 s (cached), check max abs 1e-07" in md
    assert "- note: dynamic_batch: already dynamic" in md


def test_markdown_lists_the_frontier() -> None:
    from edgeopt.report.frontier import build_frontier

    report = _report()
    slow = {**_row("ort-cpu/int8", 0.85, 1.5), "precision": "int8"}  # worse and slower than ort-cpu/fp32
    report["variants"].append(slow)
    report["frontier"] = build_frontier(report["variants"], report["recommended"], "top1")
    md = render_markdown(report)
    assert "- ort-cpu: front ort-cpu/fp32" in md
    assert "  - ort-cpu/int8: dominated by ort-cpu/fp32" in md
    assert "**Accuracy-latency frontier**" not in render_markdown(_report())  # no frontier in the report: no section


def test_write_reports_and_paths(tmp_path: Path) -> None:
    report = _report()
    write_reports(tmp_path, report, {"schema": "edgeopt.manifest/1"})
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert (tmp_path / "report.md").read_text() == render_markdown(report)
    assert json.loads((tmp_path / "manifest.json").read_text())["schema"] == "edgeopt.manifest/1"
    assert {p.name for p in tmp_path.iterdir()} >= {"manifest.json", "report.json", "report.md"}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temporaries
    assert report_path(tmp_path / "artifacts" / "a.onnx", tmp_path) == "artifacts/a.onnx"
    assert report_path(None, tmp_path) is None
    write_json_atomic(tmp_path / "again.json", {"b": 1, "a": 2})
    assert (tmp_path / "again.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'


def test_declared_cosine_judges_an_embedding_model() -> None:
    """An embedding's argmax is meaningless: with metric cosine, agreement is ignored and the budget applies to the
    mean per-sample cosine (1 point: >= 0.99)."""
    ref = _row("reference", None, 2.0)
    emb = [{**_row("fp32", None, 1.0, agree=0.6), "fidelity": {"top1_agreement": 0.6, "sample_cosine_mean": 1.0}},
           {**_row("int8-a", None, 0.5, agree=0.4), "fidelity": {"top1_agreement": 0.4, "sample_cosine_mean": 0.97}},
           {**_row("int8-b", None, 0.6, agree=0.5), "fidelity": {"top1_agreement": 0.5, "sample_cosine_mean": 0.994}}]
    assert recommend(emb, ref, 1.0)["variant"] is None  # auto judges by agreement and rejects all three
    rec = recommend(emb, ref, 1.0, metric="cosine")
    assert rec["variant"] == "int8-b" and rec["metric"] == "cosine"
    assert rec["rejected"] == ["int8-a: cosine 0.9700 (drop 3.00 points) > 1"] and "cosine" in rec["rule"]
