"""report.html: a self-contained view of report.json (inline CSS and SVG; no script, no network, readable offline)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from edgeopt.report.markdown import check_text, clock_note

W, H, LEFT, RIGHT, TOP, BOTTOM = 540, 380, 58, 16, 36, 46
FRONT, DOMINATED, RECOMMENDED, REFERENCE = "#1f6feb", "#b8b8b8", "#e8590c", "#222222"
METRIC_LABEL = {"top1": "top-1 accuracy (%)", "top1_agreement": "top-1 agreement with the reference (%)"}
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;margin:24px 32px}
body{max-width:1180px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#57606a;margin:2px 0}.box{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px}
.rec b{color:#e8590c}.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}
figcaption{color:#57606a;font-size:12px;max-width:540px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.dominated td{color:#8c959f}tr.recommended td{background:#fff4e6;font-weight:600}
details{margin:4px 0}summary{cursor:pointer}ul.notes{margin:4px 0 8px;color:#57606a;font-size:13px}
"""


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values covering [lo, hi]."""
    span = max(hi - lo, 1e-9)
    step = 10 ** math.floor(math.log10(span / n))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if span / (step * m) <= n)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _short(name: str, target: str) -> str:
    return name[len(target) + 1 :] if name.startswith(target + "/") else name


def _y_range(ys: list[float], scale: float) -> tuple[float, float]:
    """The quality axis: the builds within 10 points (0.01 of cosine) of the best; lower ones sit on the bottom edge,
    so that one broken build does not squash the builds worth comparing into a line."""
    floor, window = (0.5, 10.0) if scale > 1 else (0.0005, 0.01)
    top = max(ys)
    near = [y for y in ys if y >= top - window]
    pad = max((top - min(near)) * 0.12, floor)
    return min(near) - pad, top + pad


def _label(p: dict[str, Any], target: str, scale: float, y_lo: float) -> str:
    """A point's label: the variant name, with its value when it sits clamped below the axis."""
    name = _short(p["name"], target)
    return f"{name} ({p['quality'] * scale:.1f}, below)" if p["quality"] * scale < y_lo else name


def _place_labels(
    items: list[tuple[float, float, str]], width: float, height: float, ref_y: float | None
) -> list[tuple[float, float]]:
    """Label positions beside each point that overlap no point, earlier label, reference line or edge (greedy)."""
    placed = [(x - 6, y - 6, x + 6, y + 6) for x, y, _ in items]
    if ref_y is not None:
        placed.append((LEFT, ref_y - 2, width - RIGHT, ref_y + 2))
    out = []
    for x, y, text in items:
        w = 5.6 * len(text)
        spot = (x + 8, y - 7)
        for dx, dy in ((8, -7), (8, 13), (8, -19), (8, 25), (-8 - w, -7), (-8 - w, 13), (8, -31), (8, 37)):
            bx, by = x + dx, y + dy
            box = (bx, by - 9, bx + w, by + 2)
            inside = LEFT < box[0] and box[2] < width - RIGHT and TOP < box[1] and box[3] < height - BOTTOM
            if inside and not any(b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3] for b in placed):
                spot = (bx, by)
                break
        placed.append((spot[0], spot[1] - 9, spot[0] + w, spot[1] + 2))
        out.append(spot)
    return out


def chart_svg(target: str, points: list[dict[str, Any]], reference: dict[str, Any] | None) -> str:
    """Quality vs median latency for one target: the front joined and coloured, dominated builds grey, the
    recommended build ringed, the reference's quality as a dashed line (its runtime differs, so no latency)."""
    pts = [p for p in points if p["target"] == target]
    scale = 100.0 if pts and pts[0]["metric"] in METRIC_LABEL else 1.0
    xs = [p["latency_ms"] for p in pts]
    ys = [p["quality"] * scale for p in pts] + ([reference["quality"] * scale] if reference else [])
    x_lo, x_hi = 0.0, max(xs) * 1.1
    y_lo, y_hi = _y_range(ys, scale)

    def sx(v: float) -> float:
        return LEFT + (v - x_lo) / (x_hi - x_lo) * (W - LEFT - RIGHT)

    def sy(v: float) -> float:  # builds far below the front sit on the bottom edge (their label gives the value)
        return TOP + (y_hi - max(v * scale, y_lo)) / (y_hi - y_lo) * (H - TOP - BOTTOM) - (4 if v * scale < y_lo else 0)

    out = [
        f'<svg class="frontier-chart" data-target="{escape(target)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="accuracy versus latency for {escape(target)}">',
        f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="#fff" '
        'stroke="#d0d7de"/>',
    ]
    for t in _ticks(x_lo, x_hi):
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{H - BOTTOM}" stroke="#eef1f4"/>')
        out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 15}" font-size="11" text-anchor="middle">{t:g}</text>')
    for t in _ticks(y_lo, y_hi):
        y = TOP + (y_hi - t) / (y_hi - y_lo) * (H - TOP - BOTTOM)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#eef1f4"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{t:g}</text>')
    label = METRIC_LABEL.get(pts[0]["metric"] if pts else "", "mean per-sample cosine to the reference")
    out.append(
        f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 10}" font-size="12" text-anchor="middle">'
        "median latency (ms, lower is better)</text>"
    )
    out.append(
        f'<text transform="translate(16,{(TOP + H - BOTTOM) / 2}) rotate(-90)" font-size="12" '
        f'text-anchor="middle">{escape(label)}</text>'
    )
    if reference:
        y = sy(reference["quality"])
        out.append(
            f'<line class="reference" x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="{REFERENCE}" '
            'stroke-dasharray="5,4" stroke-width="1.2"/>'
        )
    front = sorted((p for p in pts if p["pareto"]), key=lambda p: p["latency_ms"])
    if len(front) > 1:
        path = " ".join(f"{sx(p['latency_ms']):.1f},{sy(p['quality']):.1f}" for p in front)
        out.append(f'<polyline class="front" points="{path}" fill="none" stroke="{FRONT}" stroke-width="2"/>')
    ordered = sorted(pts, key=lambda p: (not p["recommended"], not p["pareto"], p["latency_ms"]))
    ref_y = sy(reference["quality"]) if reference else None
    labels = [(sx(p["latency_ms"]), sy(p["quality"]), _label(p, target, scale, y_lo)) for p in ordered]
    spots = _place_labels(labels, W, H, ref_y)
    for p, (lx, ly) in zip(ordered, spots, strict=True):
        x, y, color = sx(p["latency_ms"]), sy(p["quality"]), FRONT if p["pareto"] else DOMINATED
        cls = "point front" if p["pareto"] else "point dominated"
        out.append(
            f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}"><title>'
            f"{escape(p['name'])}: {p['quality'] * scale:.2f} at {p['latency_ms']:.3f} ms</title></circle>"
        )
        if p["recommended"]:
            out.append(
                f'<circle class="recommended" cx="{x:.1f}" cy="{y:.1f}" r="10" fill="none" '
                f'stroke="{RECOMMENDED}" stroke-width="2.5"/>'
            )
        text_color = "#1b1f24" if p["pareto"] else "#8c959f"
        weight = ' font-weight="bold"' if p["recommended"] else ""
        out.append(
            f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="10" fill="{text_color}"{weight}>'
            f"{escape(_label(p, target, scale, y_lo))}</text>"
        )
    legend = [(FRONT, FRONT, "on the front"), (DOMINATED, DOMINATED, "dominated"), ("none", RECOMMENDED, "recommended")]
    lx = LEFT
    for fill, stroke, text in legend:
        out.append(f'<circle cx="{lx + 5}" cy="14" r="5" fill="{fill}" stroke="{stroke}" stroke-width="2"/>')
        out.append(f'<text x="{lx + 14}" y="18" font-size="11">{text}</text>')
        lx += 30 + int(6.2 * len(text))
    if reference:
        out.append(f'<line x1="{lx}" y1="14" x2="{lx + 16}" y2="14" stroke="{REFERENCE}" stroke-dasharray="4,3"/>')
        ref_text = f"reference ({reference['target']}, {reference['latency_ms']:.3f} ms)"
        out.append(f'<text x="{lx + 20}" y="18" font-size="11">{escape(ref_text)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _variant_table(report: dict[str, Any], front: dict[str, dict[str, Any]]) -> str:
    rows = [
        '<table class="variants"><thead><tr><th>variant</th><th>target</th><th>precision</th><th>status</th>'
        "<th>size MB</th><th>accuracy</th><th>latency ms (median)</th><th>p90</th><th>speed-up</th>"
        "<th>frontier</th></tr></thead><tbody>"
    ]
    for v in report["variants"]:
        f = front.get(v["name"])
        cls = "recommended" if v["name"] == report.get("recommended") else ""
        if f is not None and f.get("pareto") is False:
            cls = cls or "dominated"
        lat = v.get("latency_ms") or {}
        acc = (v.get("accuracy") or {}).get("top1")
        acc_s = _fmt(acc * 100 if acc is not None else None, ".2f", "%")
        if acc is None and f is not None:
            acc_s = f"{f['quality']:.4f} ({f['metric']})"
        if f is None:
            where = "-"
        elif f["reference"]:
            where = "reference"
        elif f["pareto"]:
            where = "on the front" + (" (recommended)" if f["recommended"] else "")
        else:
            where = "dominated by " + ", ".join(f["dominated_by"][:3])
        size = v.get("size_bytes")
        rows.append(
            f'<tr class="{cls}"><td>{escape(v["name"])}</td><td>{escape(v["target"])}</td>'
            f"<td>{escape(str(v.get('precision')))}</td><td>{escape(v['status'])}</td>"
            f'<td class="num">{_fmt(size / 1e6 if size else None, ".3f")}</td><td class="num">{acc_s}</td>'
            f'<td class="num">{_fmt(lat.get("median"), ".3f")}</td><td class="num">{_fmt(lat.get("p90"), ".3f")}</td>'
            f'<td class="num">{_fmt(v.get("speedup_vs_baseline"), ".2f", "x")}</td><td>{escape(where)}</td></tr>'
        )
    return "\n".join(rows) + "</tbody></table>"


def _pass_records(report: dict[str, Any]) -> str:
    out = []
    for v in report["variants"]:
        passes = v.get("passes") or []
        if not passes:
            continue
        out.append(f"<details><summary>{escape(v['name'])}: {len(passes)} passes</summary>")
        out.append(
            '<table class="passes"><tr><th>pass</th><th>config</th><th>time s</th><th>cached</th>'
            "<th>size kB</th><th>numerical check</th></tr>"
        )
        for p in passes:
            chk = p.get("check") or {}
            check = check_text(chk) if chk else "not semantics-preserving"
            cfg = ", ".join(f"{k}={val}" for k, val in sorted((p.get("config") or {}).items()) if val not in (None, []))
            out.append(
                f"<tr><td>{escape(p['pass'])}</td><td>{escape(cfg[:160])}</td>"
                f'<td class="num">{p["wall_s"]:.2f}</td><td>{"yes" if p["cached"] else "no"}</td>'
                f'<td class="num">{p["size_bytes"] / 1e3:.1f}</td><td>{escape(check)}</td></tr>'
            )
        out.append("</table>")
        notes = v.get("notes") or []
        if notes:
            out.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
        out.append("</details>")
    return "\n".join(out)


def render_html(report: dict[str, Any]) -> str:
    """The whole page: header, recommendation and its rule, one chart per target, the table, the pass records."""
    points = report.get("frontier") or []
    front = {p["name"]: p for p in points}
    ref = next((p for p in points if p["reference"]), None)
    targets = list(dict.fromkeys(p["target"] for p in points if not p["reference"]))
    rec = report.get("recommendation") or {}
    model, data = report.get("model") or {}, report.get("data") or {}
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>edgeopt report</title>',
        f"<style>{CSS}</style></head><body>",
        "<h1>edgeopt report</h1>",
        f'<p class="meta">Machine: {escape(report["machine"]["summary"])}</p>',
        f'<p class="meta">Model: {escape(str(model.get("path") or model.get("kind", "-")))}</p>',
        f'<p class="meta">Data: {escape(str(data.get("source", "none")))} ({data.get("n", 0)} samples)</p>',
        f'<div class="box rec"><b>Recommended: {escape(str(rec.get("variant") or "none"))}</b>. '
        f"{escape(rec.get('reason', ''))}<br>Rule: {escape(rec.get('rule', '-'))}. The recommended build is on "
        "its target's front by construction: a build beating it on both axes would meet the rule and be faster.</div>",
    ]
    explore = report.get("explore")
    if explore:
        grid = (
            f"MAC budgets {', '.join(f'{m:.0%}' for m in explore['prune_macs'])}; recovery "
            f"{', '.join(explore['recovery'])}; precisions {', '.join(explore['precisions'] or ['all'])}; "
            f"targets {', '.join(explore['targets'])}"
        )
        parts.append(f"<h2>Explored grid</h2><p>{escape(grid)}</p>")
        if explore.get("notes"):
            parts.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in explore["notes"]) + "</ul>")
    parts.append('<h2>Accuracy vs latency</h2><div class="charts">')
    for t in targets:
        parts.append(
            f"<figure>{chart_svg(t, points, ref)}<figcaption>{escape(t)}: each point is a build; the line "
            "joins the builds no other build of this target beats on both accuracy and latency.</figcaption>"
            "</figure>"
        )
    if not targets:
        parts.append("<p>No build was measured (nothing to plot).</p>")
    parts.append("</div><h2>Variants</h2>")
    parts.append(_variant_table(report, front))
    parts.append("<h2>Pass records</h2>")
    parts.append(_pass_records(report))
    clocks = clock_note(report)
    parts.append(
        '<p class="meta">Latencies come from one interleaved run (every build in a shuffled order each '
        "round); medians over rounds, speed-up is the median of per-round ratios against the reference. "
        + (f"{escape(clocks)} " if clocks else "")
        + "report.json holds every figure shown here.</p></body></html>"
    )
    return "\n".join(parts) + "\n"


__all__ = ["chart_svg", "render_html"]
