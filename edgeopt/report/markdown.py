"""report.md: a readable view of report.json."""

from __future__ import annotations

from typing import Any

from edgeopt.evaluate.metric import value


def check_text(chk: dict[str, Any]) -> str:
    """A pass's numerical check (semantics-preserving passes) or record (passes that change numbers by design)."""
    agree = chk.get("top1_agreement")
    figures = f"max abs {chk['max_abs']:.2g}, cosine {chk['cosine']:.6f}" + (
        f", top-1 agreement {agree * 100:.2f}%" if agree is not None and chk.get("kind") == "measured" else "")
    if chk.get("kind") == "measured":
        return f"changes outputs by design, vs its input on {chk['n']} {chk['inputs']} samples: {figures}"
    return f"check {figures}"


def _fmt(v: Any, spec: str, suffix: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{suffix}"


def _frontier_lines(points: list[dict[str, Any]]) -> list[str]:
    """Per target: the builds on the quality-vs-latency front (fastest first), and what beats each of the others."""
    if not any(p.get("pareto") is not None for p in points):
        return []
    lines = ["", "**Accuracy-latency frontier** (per target; a build is dominated when another is at least as good on "
             "both and better on one):"]
    for target in sorted({p["target"] for p in points if not p.get("reference")}):
        mine = sorted((p for p in points if p["target"] == target and not p.get("reference")),
                      key=lambda p: p["latency_ms"])
        front = ", ".join(p["name"] for p in mine if p.get("pareto"))
        lines.append(f"- {target}: front {front or '-'}")
        lines += [f"  - {p['name']}: dominated by {', '.join(p['dominated_by'])}" for p in mine if not p.get("pareto")]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The variant table, the machine, the recommendation and per-variant notes."""
    lines = ["# edgeopt report", "", f"Machine: {report['machine']['summary']}", ""]
    model = report.get("model") or {}
    if model.get("path"):
        lines += [f"Model: `{model['path']}` ({model.get('kind')}, sha256 {model.get('sha256', '')[:16]}…)", ""]
    if report.get("data"):
        d = report["data"]
        lines += [f"Data: {d.get('source', '?')} ({d.get('n', '?')} samples)", ""]
    metric = (report.get("recommendation") or {}).get("metric") or "top1"
    column = {"top1": "accuracy", "top1_agreement": "top-1 agreement", "cosine": "cosine (mean per sample)"}[metric]
    lines += [
        f"| variant | target | precision | status | size MB | {column} | latency ms median | speed-up vs baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in report["variants"]:
        q = value(v, metric)
        acc_s = "-" if q is None else (f"{q:.5f}" if metric == "cosine" else f"{q * 100:.2f}%")
        lat = (v.get("latency_ms") or {}).get("median")
        size = v.get("size_bytes")
        mark = " **(recommended)**" if v["name"] == report.get("recommended") else ""
        lines.append(
            f"| {v['name']}{mark} | {v['target']} | {v['precision']} | {v['status']} | "
            f"{_fmt(size / 1e6 if size else None, '.3f')} | {acc_s} | {_fmt(lat, '.3f')} | "
            f"{_fmt(v.get('speedup_vs_baseline'), '.2f', 'x')} |"
        )
    rec = report.get("recommendation") or {}
    lines += [
        "",
        f"**Recommended:** {rec.get('variant') or 'none'}. Rule: {rec.get('rule', '-')}. {rec.get('reason', '')}",
    ]
    for r in rec.get("rejected") or []:
        lines.append(f"- not recommended: {r}")
    lines += _frontier_lines(report.get("frontier") or [])
    clocks = clock_note(report)
    lines += [
        "",
        "Latencies: one interleaved run; each round runs every variant in a shuffled order, "
        "4 calls in a row keeping the median of the last 3 (the first absorbs the switch from the other "
        "runtime); median/p90/p99 are over rounds, and speed-up is the median of per-round ratios against "
        "the reference." + (f" {clocks}" if clocks else ""),
        "",
    ]
    for v in report["variants"]:
        fid = v.get("fidelity")
        notes = v.get("notes") or []
        if not fid and not notes and not v.get("diagnosis"):
            continue
        lines.append(f"## {v['name']}")
        if fid:
            agree, sample_min = fid.get("top1_agreement"), fid.get("sample_cosine_min")
            lines.append(
                f"- fidelity vs reference: max abs diff {fid['max_abs']:.3g}, cosine {fid['cosine']:.6f}"
                + (f", lowest per-sample cosine {sample_min:.6f}" if sample_min is not None else "")
                + (f", top-1 agreement {agree * 100:.2f}%" if agree is not None else "")
                + (" (random inputs)" if fid.get("inputs") == "random" else "")
            )
        for p in v.get("passes") or []:
            chk = p.get("check") or {}
            check = f", {check_text(chk)}" if chk else ""
            lines.append(f"- pass `{p['pass']}`: {p['wall_s']:.2f} s{' (cached)' if p['cached'] else ''}{check}")
        for n in notes:
            lines.append(f"- note: {n}")
        for d in v.get("diagnosis") or []:
            lines.append(f"- diagnosis: {d}")
        lines.append("")
    return "\n".join(lines) + "\n"


def clock_note(report: dict[str, Any]) -> str | None:
    """What the report must say when some rows were timed on another clock than the host's (GPU builds)."""
    own = sorted({(v.get("latency_ms") or {}).get("clock") for v in report.get("variants", [])} - {None, "wall"})
    if not own:
        return None
    return (f"Rows timed by {', '.join(own)} give the device's time per run with the inputs already on it (no host "
            "copies); the others are host wall time, so a speed-up across the two compares different clocks.")
