"""Accuracy and fidelity of several builds in one streaming pass over the data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeopt.backends.base import Runner, run_batched
from edgeopt.evaluate.fidelity import FidelityStats


@dataclass
class AccuracyStats:
    """Running top-1 / top-5 counts."""

    top1: int = 0
    top5: int = 0
    n: int = 0

    def update(self, scores: np.ndarray, labels: np.ndarray) -> None:
        scores = scores.reshape(scores.shape[0], -1)
        labels = labels.reshape(-1).astype(np.int64)
        self.top1 += int(np.sum(np.argmax(scores, axis=1) == labels))
        k = min(5, scores.shape[1])
        topk = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        self.top5 += int(np.sum(np.any(topk == labels[:, None], axis=1)))
        self.n += labels.size

    def result(self) -> dict[str, Any]:
        return {
            "top1": self.top1 / self.n if self.n else None,
            "top5": self.top5 / self.n if self.n else None,
            "correct": self.top1,
            "n": self.n,
        }


@dataclass
class VariantEval:
    """Accumulated evaluation of one build."""

    accuracy: AccuracyStats = field(default_factory=AccuracyStats)
    fidelity: FidelityStats = field(default_factory=FidelityStats)
    error: str | None = None


def evaluate_runners(
    runners: dict[str, Runner],
    data: Any,
    reference: str | None,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every build on every batch once; accuracy where labels exist, fidelity against `reference`."""
    evals = {name: VariantEval() for name in runners}
    total = len(data)
    seen = 0
    for batch in data.batches(batch_size):
        ref_out = None
        if reference is not None:
            ref_out = run_batched(runners[reference], batch.inputs)
        for name, runner in runners.items():
            ev = evals[name]
            if ev.error:
                continue
            try:
                out = ref_out if name == reference and ref_out is not None else run_batched(runner, batch.inputs)
            except Exception as exc:  # noqa: BLE001 - a build failing at run time is reported, not fatal
                ev.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                continue
            if batch.labels is not None:
                ev.accuracy.update(out[0], batch.labels)
            if ref_out is not None and name != reference:
                ev.fidelity.update(ref_out, out)
        seen += len(next(iter(batch.inputs.values())))
        if progress is not None:
            progress(seen, total)
    results: dict[str, dict[str, Any]] = {}
    for name, ev in evals.items():
        results[name] = {
            "accuracy": ev.accuracy.result() if ev.accuracy.n else None,
            "fidelity": ev.fidelity.result() if (reference and name != reference and not ev.error) else None,
            "error": ev.error,
        }
    return results
