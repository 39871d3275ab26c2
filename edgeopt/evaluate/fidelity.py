"""Fidelity of a build against its reference: max abs diff, cosine (overall and per sample), top-1 agreement;
reduced batch by batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def compare_outputs(ref: list[np.ndarray], got: list[np.ndarray]) -> dict[str, float]:
    """Max abs diff and cosine similarity over all outputs (flattened), as floats."""
    stats = FidelityStats()
    stats.update(ref, got)
    return stats.result()


@dataclass
class FidelityStats:
    """Running fidelity statistics; memory stays constant however many batches are seen."""

    max_abs: float = 0.0
    max_ref: float = 0.0
    dot: float = 0.0
    norm_ref: float = 0.0
    norm_got: float = 0.0
    agree: int = 0
    n: int = 0
    cos_sum: float = 0.0
    cos_min: float = 1.0
    cos_n: int = 0
    shape_mismatch: str | None = None

    def update(self, ref: list[np.ndarray], got: list[np.ndarray]) -> None:
        """Add one batch of outputs (first output is treated as the class scores for agreement)."""
        if len(ref) != len(got):
            self.shape_mismatch = f"{len(ref)} outputs vs {len(got)}"
            return
        for r, g in zip(ref, got, strict=True):
            if r.shape != g.shape:
                self.shape_mismatch = f"output shape {list(r.shape)} vs {list(g.shape)}"
                return
            r64 = r.astype(np.float64).ravel()
            g64 = g.astype(np.float64).ravel()
            if r64.size:
                self.max_abs = max(self.max_abs, float(np.max(np.abs(r64 - g64))))
                self.max_ref = max(self.max_ref, float(np.max(np.abs(r64))))
            self.dot += float(r64 @ g64)
            self.norm_ref += float(r64 @ r64)
            self.norm_got += float(g64 @ g64)
        r0, g0 = ref[0], got[0]
        if r0.ndim >= 1 and r0.shape[0]:
            cos = sample_cosines(r0, g0)
            self.cos_sum += float(cos.sum())
            self.cos_min = min(self.cos_min, float(cos.min()))
            self.cos_n += cos.size
        if r0.ndim == 2 and r0.shape[1] > 1:
            self.agree += int(np.sum(np.argmax(r0, axis=1) == np.argmax(g0, axis=1)))
            self.n += r0.shape[0]

    def result(self) -> dict[str, Any]:
        """The statistics so far (cosine 1.0 when both sides are all zeros)."""
        if self.shape_mismatch:
            return {"max_abs": float("inf"), "cosine": 0.0, "top1_agreement": None, "error": self.shape_mismatch}
        denom = np.sqrt(self.norm_ref) * np.sqrt(self.norm_got)
        cosine = float(self.dot / denom) if denom > 0 else (1.0 if self.norm_ref == self.norm_got else 0.0)
        return {
            "max_abs": self.max_abs,
            "max_abs_rel": self.max_abs / max(self.max_ref, 1e-12),
            "cosine": cosine,
            "top1_agreement": (self.agree / self.n) if self.n else None,
            "sample_cosine_mean": (self.cos_sum / self.cos_n) if self.cos_n else None,
            "sample_cosine_min": self.cos_min if self.cos_n else None,
        }


def sample_cosines(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Cosine of each sample's output (first axis = samples, the rest flattened) to the reference's; 1.0 where both
    are all zeros, 0.0 where only one is."""
    r = ref.astype(np.float64).reshape(ref.shape[0], -1)
    g = got.astype(np.float64).reshape(got.shape[0], -1)
    nr, ng = np.linalg.norm(r, axis=1), np.linalg.norm(g, axis=1)
    denom = nr * ng
    both_zero = (nr == 0) & (ng == 0)
    safe = np.where(denom > 0, denom, 1.0)
    return np.where(denom > 0, np.sum(r * g, axis=1) / safe, np.where(both_zero, 1.0, 0.0))
