"""The recommendation rule: the fastest build within the accuracy budget, stated in the report."""

from __future__ import annotations

from typing import Any

AGREEMENT_MIN = 0.99
COSINE_MIN = 0.999


def recommend(variants: list[dict[str, Any]], reference: dict[str, Any], max_drop_points: float) -> dict[str, Any]:
    """Pick the fastest ok variant whose top-1 is within `max_drop_points` of the reference
    (or, without labels, whose top-1 agreement >= 99% / cosine >= 0.999); explain the choice."""
    ref_acc = (reference.get("accuracy") or {}).get("top1")
    rule = (
        f"fastest build (median latency) whose top-1 is within {max_drop_points:g} points of the reference"
        if ref_acc is not None
        else f"fastest build (median latency) with top-1 agreement >= {AGREEMENT_MIN:.0%} "
        f"(or cosine >= {COSINE_MIN}) against the reference"
    )
    candidates, rejected = [], []
    for v in variants:
        if v["status"] != "ok" or not v.get("latency_ms"):
            continue
        acc = (v.get("accuracy") or {}).get("top1")
        fid = v.get("fidelity") or {}
        if ref_acc is not None and acc is not None:
            drop = (ref_acc - acc) * 100
            if drop > max_drop_points:
                rejected.append(f"{v['name']}: top-1 drop {drop:.2f} points > {max_drop_points:g}")
                continue
        else:
            agree, cos = fid.get("top1_agreement"), fid.get("cosine")
            if agree is not None and agree < AGREEMENT_MIN:
                rejected.append(f"{v['name']}: top-1 agreement {agree:.2%} < {AGREEMENT_MIN:.0%}")
                continue
            if agree is None and cos is not None and cos < COSINE_MIN:
                rejected.append(f"{v['name']}: cosine {cos:.4f} < {COSINE_MIN}")
                continue
        candidates.append(v)
    if not candidates:
        return {"variant": None, "rule": rule, "reason": "no build met the rule", "rejected": rejected}
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
    return {"variant": best["name"], "rule": rule, "reason": reason, "rejected": rejected}


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
