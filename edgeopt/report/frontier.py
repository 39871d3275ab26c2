"""The accuracy-latency frontier: per target, which builds no other build beats on both (and on size)."""

from __future__ import annotations

from typing import Any

from edgeopt.evaluate.metric import resolve_metric, value


def dominates(a: dict[str, Any], b: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """a is at least as good as b on every key and better on one (quality up; latency, size down)."""
    signs = {"quality": 1.0, "latency_ms": -1.0, "size_bytes": -1.0}
    pairs = [(signs[k] * a[k], signs[k] * b[k]) for k in keys if a.get(k) is not None and b.get(k) is not None]
    return len(pairs) == len(keys) and all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def build_frontier(
    rows: list[dict[str, Any]], recommended: str | None, metric: str = "auto"
) -> list[dict[str, Any]]:
    """One entry per measured build (reference first): its coordinates, whether it is on its target's front of
    quality vs latency (`pareto`) and of quality vs latency vs size (`pareto_size`), and what dominates it.
    Quality is `metric` (edgeopt.evaluate.metric; auto: top-1 with labels, else agreement, else cosine)."""
    metric = resolve_metric(metric, rows)
    points: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        lat = (row.get("latency_ms") or {}).get("median")
        q = value(row, metric)
        if row.get("status") != "ok" or lat is None or q is None:
            continue
        points.append(
            {
                "name": row["name"],
                "target": row["target"],
                "precision": row.get("precision"),
                "reference": i == 0,
                "metric": metric,
                "quality": q,
                "latency_ms": lat,
                "size_bytes": row.get("size_bytes"),
                "speedup_vs_baseline": row.get("speedup_vs_baseline"),
                "recommended": row["name"] == recommended,
            }
        )
    for p in points:
        if p["reference"]:
            p.update(pareto=None, pareto_size=None, dominated_by=[])
            continue
        rivals = [q for q in points if q is not p and not q["reference"] and q["target"] == p["target"]]
        beaten_by = sorted(q["name"] for q in rivals if dominates(q, p, ("quality", "latency_ms")))
        p["dominated_by"] = beaten_by
        p["pareto"] = not beaten_by
        p["pareto_size"] = not any(dominates(q, p, ("quality", "latency_ms", "size_bytes")) for q in rivals)
    return points
