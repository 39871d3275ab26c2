"""The recommendation rule: the fastest build within the accuracy budget, stated in the report."""

from __future__ import annotations

from typing import Any

from edgeopt.evaluate.metric import LABEL, drop_points, resolve_metric, value


def recommend(variants: list[dict[str, Any]], reference: dict[str, Any], max_drop_points: float,
              metric: str = "auto") -> dict[str, Any]:
    """Pick the fastest ok variant whose quality `metric` (edgeopt.evaluate.metric; auto: top-1 with labels, else
    top-1 agreement, else cosine) is within `max_drop_points` points of the reference; explain the choice."""
    metric_used = resolve_metric(metric, [reference, *variants])
    ref_value = value(reference, metric_used)
    if metric_used is None or ref_value is None:
        rule = "fastest build (median latency); no quality figure was measured"
    elif metric_used == "top1":
        rule = f"fastest build (median latency) whose top-1 is within {max_drop_points:g} points of the reference"
    else:
        rule = (f"fastest build (median latency) whose {LABEL[metric_used]} is >= {1 - max_drop_points / 100:.4g} "
                f"(a drop of at most {max_drop_points:g} points)")
    candidates, rejected = [], []
    for v in variants:
        if v["status"] != "ok" or not v.get("latency_ms"):
            continue
        if metric_used is not None and ref_value is not None:
            got = value(v, metric_used)
            if got is None:
                rejected.append(f"{v['name']}: no {LABEL[metric_used]} measured")
                continue
            drop = drop_points(metric_used, ref_value, got)
            if drop > max_drop_points:
                shown = {"top1": f"top-1 drop {drop:.2f} points",
                         "top1_agreement": f"top-1 agreement {got:.2%} (drop {drop:.2f} points)",
                         "cosine": f"cosine {got:.4f} (drop {drop:.2f} points)"}[metric_used]
                rejected.append(f"{v['name']}: {shown} > {max_drop_points:g}")
                continue
        candidates.append(v)
    if not candidates:
        timed = [v for v in variants if v["status"] == "ok" and v.get("latency_ms")]
        reason = ("no build met the rule" if timed or not variants
                  else "no build was timed on this machine (each row's status says why)")
        return {"variant": None, "rule": rule, "reason": reason, "rejected": rejected, "metric": metric_used}
    best = min(candidates, key=lambda v: v["latency_ms"]["median"])
    speed = best.get("speedup_vs_baseline")
    reason = f"{best['name']} is the fastest qualifying build"
    if speed is not None:
        reason += f" ({speed:.2f}x vs the reference)"
        if speed < 1.0:
            reason += "; it is SLOWER than the reference, recommended only because no faster build qualifies"
            if best.get("diagnosis"):  # quantization: say why an INT8 build is slow
                reason += f" (why: {'; '.join(best['diagnosis'][1:3] or best['diagnosis'][:1])})"
    rejected += _slower_int8(candidates, best)
    return {"variant": best["name"], "rule": rule, "reason": reason, "rejected": rejected, "metric": metric_used}


def _slower_int8(candidates: list[dict[str, Any]], best: dict[str, Any]) -> list[str]:
    """INT8 builds slower than the FP32 build of their target, with the first line of their diagnosis."""
    fp32 = {v["target"]: v for v in candidates if v.get("precision") == "fp32"}
    out = []
    for v in candidates:
        base = fp32.get(v["target"])
        if v is best or v.get("precision") != "int8" or base is None:
            continue
        ratio = base["latency_ms"]["median"] / v["latency_ms"]["median"]
        if ratio < 1.0:
            why = "".join(f"; {d}" for d in (v.get("diagnosis") or [])[1:2])
            out.append(f"{v['name']}: INT8 is slower than {base['name']} ({ratio:.2f}x){why}")
    return out
