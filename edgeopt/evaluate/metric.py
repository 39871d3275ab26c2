"""The quality metric a build is judged by against its reference, and its drop in points.

- top1: top-1 accuracy on labelled data; drop = (reference - build) x 100.
- top1_agreement: the share of samples whose top-1 class matches the reference's; drop = (1 - agreement) x 100.
- cosine: the mean over samples of each sample's output cosine to the reference's (embeddings, regression outputs);
  drop = (1 - cosine) x 100.
`auto` picks top1 with labels, else top1_agreement for class scores, else cosine. Declare `cosine` for a model whose
2-D output is not class scores (a sentence or image embedding): its "top-1 agreement" would be meaningless.
"""

from __future__ import annotations

from typing import Any, Literal

QualityMetric = Literal["auto", "top1", "top1_agreement", "cosine"]
METRICS: tuple[str, ...] = ("top1", "top1_agreement", "cosine")
_FIDELITY_FIELD = {"top1_agreement": "top1_agreement", "cosine": "sample_cosine_mean"}
LABEL = {
    "top1": "top-1 accuracy",
    "top1_agreement": "top-1 agreement with the reference",
    "cosine": "mean per-sample output cosine to the reference",
}


def resolve_metric(declared: str, rows: list[dict[str, Any]]) -> str | None:
    """The metric the report judges builds by: the declared one, or (auto) top-1 when the reference has labelled
    accuracy, else agreement, else cosine, whichever the builds carry. rows[0] is the reference."""
    if declared != "auto":
        return declared
    ref = rows[0] if rows else {}
    if (ref.get("accuracy") or {}).get("top1") is not None:
        return "top1"
    for metric in METRICS[1:]:
        if any(value(r, metric) is not None for r in rows[1:] if r.get("name") != "reference"):
            return metric
    return None


def value(row: dict[str, Any], metric: str | None) -> float | None:
    """A build's value of `metric` (the reference agrees with itself: 1.0 for fidelity metrics)."""
    if metric is None:
        return None
    if metric == "top1":
        return (row.get("accuracy") or {}).get("top1")
    if row.get("name") == "reference":
        return 1.0
    fid = row.get("fidelity") or {}
    got = fid.get(_FIDELITY_FIELD[metric])
    if got is None and metric == "cosine":
        got = fid.get("cosine")  # rows made before per-sample cosine was recorded
    return got


def drop_points(metric: str, reference: float, got: float) -> float:
    """How many points worse than the reference a build's value is (> 0: worse)."""
    return (reference - got) * 100.0 if metric == "top1" else (1.0 - got) * 100.0
