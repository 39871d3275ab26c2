"""The frontier and report.html, checked as data and the way a person sees it (headless Chromium)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edgeopt.report.frontier import build_frontier, dominates
from edgeopt.report.html import render_html
from edgeopt.report.recommend import recommend

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip


def _row(name: str, target: str, top1: float, median: float, size: int = 1_000_000, **extra: Any) -> dict[str, Any]:
    return {
        "name": name, "target": target, "precision": extra.pop("precision", "fp32"), "status": "ok",
        "size_bytes": size, "accuracy": {"top1": top1, "n": 1000}, "fidelity": {"max_abs": 0.1, "cosine": 0.99},
        "latency_ms": {"median": median, "p90": median * 1.1, "p99": median * 1.2},
        "speedup_vs_baseline": 3.0 / median, "passes": [], "notes": [], **extra,
    }  # fmt: skip


def sample_report() -> dict[str, Any]:
    """A report with two targets, a dominated build, a failed one and pass records."""
    passes = [
        {"pass": "prune", "config": {"macs": 0.5}, "wall_s": 1.2, "cached": False, "size_bytes": 90_000,
         "check": None, "notes": []},
        {"pass": "export_onnx", "config": {"opset": 18}, "wall_s": 2.0, "cached": True, "size_bytes": 95_000,
         "check": {"max_abs": 1e-6, "cosine": 1.0}, "notes": []},
    ]  # fmt: skip
    rows = [
        _row("reference", "pytorch", 0.80, 3.0),
        _row("ort-cpu/fp32", "ort-cpu", 0.80, 1.0),
        _row("ort-cpu/macs50-fp32", "ort-cpu", 0.62, 0.55, 500_000, passes=passes, notes=["pruned <half>"]),
        _row("ort-cpu/macs50-distill-fp32", "ort-cpu", 0.795, 0.56, 500_000, passes=passes),
        _row("ort-cpu/macs50-distill-int8", "ort-cpu", 0.792, 0.30, 150_000, precision="int8"),
        _row("ort-cpu/slow", "ort-cpu", 0.70, 1.5),
        _row("tflite-cpu/fp32", "tflite-cpu", 0.80, 0.9),
        _row("tflite-cpu/macs50-distill-fp32", "tflite-cpu", 0.796, 0.5),
        {**_row("tflite-cpu/broken", "tflite-cpu", 0.0, 1.0), "status": "failed: boom", "latency_ms": None},
    ]
    rec = recommend(rows[1:], rows[0], 1.0)
    return {
        "machine": {"summary": "test machine (2 cores)"},
        "model": {"kind": "torch", "path": "net.pt2"},
        "data": {"source": "cifar10/test.npz", "n": 1000},
        "variants": rows,
        "recommended": rec["variant"],
        "recommendation": rec,
        "frontier": build_frontier(rows, rec["variant"]),
        "explore": {"prune_macs": [1.0, 0.5], "recovery": ["none", "distill"], "precisions": None,
                    "targets": ["ort-cpu", "tflite-cpu"], "notes": ["precision 'int8' is not available for tflite"]},
    }  # fmt: skip


def test_frontier_marks_dominated_builds_per_target() -> None:
    report = sample_report()
    front = {p["name"]: p for p in report["frontier"]}
    assert report["recommended"] == "ort-cpu/macs50-distill-int8" and front["ort-cpu/macs50-distill-int8"]["pareto"]
    assert front["ort-cpu/slow"]["dominated_by"][0] == "ort-cpu/fp32" and not front["ort-cpu/slow"]["pareto"]
    assert front["ort-cpu/macs50-fp32"]["pareto"] is False  # int8 is faster and more accurate
    assert front["ort-cpu/macs50-distill-fp32"]["pareto"] is True  # more accurate than int8, faster than fp32
    assert front["tflite-cpu/macs50-distill-fp32"]["pareto"] and front["tflite-cpu/fp32"]["pareto"]
    assert front["reference"]["pareto"] is None and "tflite-cpu/broken" not in front
    assert front["ort-cpu/fp32"]["pareto_size"]


def test_dominance_needs_one_strict_gain() -> None:
    a = {"quality": 0.8, "latency_ms": 1.0, "size_bytes": 10}
    assert not dominates(a, dict(a), ("quality", "latency_ms"))
    assert dominates({**a, "latency_ms": 0.9}, a, ("quality", "latency_ms"))
    assert not dominates({**a, "latency_ms": 0.9, "size_bytes": 11}, a, ("quality", "latency_ms", "size_bytes"))


def test_html_is_self_contained_and_escaped() -> None:
    html = render_html(sample_report())
    assert html.count('<svg class="frontier-chart"') == 2 and '<table class="variants">' in html
    assert "pruned &lt;half&gt;" in html and "<half>" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched from a network
    assert "<script" not in html and "Rule: fastest build" in html
    assert 'class="recommended"' in html and "dominated by ort-cpu/fp32" in html


def _chromium() -> str | None:
    return next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (make test installs it when run as root)")
def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(render_html(sample_report()))
    profile, shot = tmp_path / "profile", tmp_path / "shot.png"
    base = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1200,900"]
    env = {**os.environ, "HOME": str(tmp_path)}
    subprocess.run(
        [*base, f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120, env=env
    )
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], check=True, capture_output=True, timeout=120, env=env)
    text = dom.stdout.decode()
    assert text.count('class="frontier-chart"') == 2 and '<table class="variants">' in text
    assert "ort-cpu/macs50-distill-int8" in text
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 900)
    colors = image.getcolors(maxcolors=1 << 20) or []
    ink = sum(count for count, rgb in colors if sum(rgb) < 600) / (1200 * 900)
    blue = sum(count for count, (r, g, b) in colors if b > 180 and r < 80 and g < 140)  # the front's points and line
    assert 0.01 < ink < 0.5, f"the page looks blank or flooded ({ink:.1%} dark pixels)"
    assert blue > 50, "the frontier chart did not render"
