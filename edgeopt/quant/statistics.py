"""Streaming tensor statistics: running min/max and a two-sided histogram, updated batch by batch.

The histogram has a fixed number of equal bins on each sign side of [-R, R). R is always a power of two larger than
the largest |x| seen, so growing R merges whole bins exactly; the final counts are those of one histogram computed
over all the data at once, whatever the batching. Memory stays constant however many batches are seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NUM_BINS = 2048
_CHUNK = 1 << 18


def pow2_ceil(value: float) -> float:
    """The smallest power of two strictly greater than `value` (> 0); 0.0 for 0."""
    if value <= 0.0:
        return 0.0
    _, exp = math.frexp(value)
    return math.ldexp(1.0, exp)


def bin_counts(values: np.ndarray, hist_range: float, num_bins: int) -> np.ndarray:
    """Counts of `values` in 2 * num_bins equal bins [e_k, e_k+1) over [-hist_range, hist_range) (numpy's histogram
    over the same edges). Processed in chunks with reused buffers: no full-size temporaries per tensor."""
    x = np.asarray(values).ravel()
    counts = np.zeros(2 * num_bins, dtype=np.int64)
    if hist_range <= 0.0:
        counts[num_bins] = x.size
        return counts
    # num_bins / hist_range is a power of two, so x * scale and its floor are exact; a tiny range would overflow
    # float32, so it is scaled in float64.
    scale = num_bins / hist_range
    dtype = np.float32 if scale < 1e30 and x.dtype == np.float32 else np.float64
    size = min(_CHUNK, x.size)
    buf = np.empty(size, dtype=dtype)
    idx = np.empty(size, dtype=np.intp)
    for start in range(0, x.size, _CHUNK):
        part = x[start : start + _CHUNK]
        b, i = buf[: part.size], idx[: part.size]
        np.multiply(part, scale, out=b, casting="unsafe")
        np.floor(b, out=b)
        np.clip(b, -num_bins, num_bins - 1, out=b)
        b += num_bins
        i[...] = b
        counts += np.bincount(i, minlength=2 * num_bins)
    return counts


def _merge_bins(counts: np.ndarray, factor: int) -> np.ndarray:
    """Merge groups of `factor` adjacent bins (range grown `factor` times); the upper part becomes empty."""
    n = counts.size
    out = np.zeros_like(counts)
    if factor >= n:
        out[0] = counts.sum()
        return out
    out[: n // factor] = counts.reshape(n // factor, factor).sum(axis=1)
    return out


@dataclass
class TensorStats:
    """Running statistics of one tensor: min, max, count and the two-sided |x| histogram."""

    num_bins: int = NUM_BINS
    min: float = math.inf
    max: float = -math.inf
    count: int = 0
    hist_range: float = 0.0
    pos: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # x in [k w, (k+1) w)
    neg: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # x in [-(k+1) w, -k w)

    def __post_init__(self) -> None:
        if self.num_bins < 4 or self.num_bins & (self.num_bins - 1):
            raise ValueError(f"num_bins must be a power of two >= 4, got {self.num_bins}")
        if self.pos.size == 0:
            self.pos = np.zeros(self.num_bins, dtype=np.int64)
        if self.neg.size == 0:
            self.neg = np.zeros(self.num_bins, dtype=np.int64)

    @property
    def empty(self) -> bool:
        """True before any value was seen."""
        return self.count == 0

    def update(self, values: np.ndarray) -> None:
        """Add a batch of values (any shape); values must be finite."""
        x = np.asarray(values)
        if x.size == 0:
            return
        x = x.astype(np.float32, copy=False).ravel()
        lo, hi = float(x.min()), float(x.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("values contain NaN or Inf")
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        self.count += int(x.size)
        new_range = pow2_ceil(max(abs(self.min), abs(self.max)))
        if new_range > self.hist_range:
            if self.hist_range > 0.0:
                factor = int(round(new_range / self.hist_range))
                self.pos, self.neg = _merge_bins(self.pos, factor), _merge_bins(self.neg, factor)
            self.hist_range = new_range
        counts = bin_counts(x, self.hist_range, self.num_bins)
        self.pos += counts[self.num_bins :]
        self.neg += counts[: self.num_bins][::-1]

    def merge(self, other: TensorStats) -> None:
        """Fold another TensorStats of the same bin count into this one (as if its values were added here)."""
        if other.num_bins != self.num_bins:
            raise ValueError("cannot merge statistics with different bin counts")
        if other.empty:
            return
        target = max(self.hist_range, other.hist_range)
        mine = self._rebinned(target)
        theirs = other._rebinned(target)
        self.pos, self.neg = mine[0] + theirs[0], mine[1] + theirs[1]
        self.hist_range = target
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        self.count += other.count

    def _rebinned(self, target: float) -> tuple[np.ndarray, np.ndarray]:
        if self.hist_range <= 0.0 or target <= self.hist_range:
            return self.pos.copy(), self.neg.copy()
        factor = int(round(target / self.hist_range))
        return _merge_bins(self.pos, factor), _merge_bins(self.neg, factor)

    @property
    def bin_width(self) -> float:
        """Width of one histogram bin."""
        return self.hist_range / self.num_bins

    def abs_hist(self) -> np.ndarray:
        """Histogram of |x| over [0, hist_range]."""
        return self.pos + self.neg

    def signed_hist(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges) over [-hist_range, hist_range]: negatives reversed, then positives (2 * bins)."""
        counts = np.concatenate([self.neg[::-1], self.pos])
        edges = np.linspace(-self.hist_range, self.hist_range, 2 * self.num_bins + 1)
        return counts, edges

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; histograms trimmed of trailing empty bins."""
        return {
            "min": _json_float(self.min),
            "max": _json_float(self.max),
            "count": self.count,
            "hist_range": self.hist_range,
            "hist_pos": _trim(self.pos),
            "hist_neg": _trim(self.neg),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], num_bins: int) -> TensorStats:
        """Inverse of to_dict."""
        pos = np.zeros(num_bins, dtype=np.int64)
        neg = np.zeros(num_bins, dtype=np.int64)
        hp, hn = d.get("hist_pos") or [], d.get("hist_neg") or []
        if len(hp) > num_bins or len(hn) > num_bins:
            raise ValueError("histogram longer than num_bins")
        pos[: len(hp)] = hp
        neg[: len(hn)] = hn
        return cls(
            num_bins=num_bins, min=float(d["min"]), max=float(d["max"]), count=int(d["count"]),
            hist_range=float(d["hist_range"]), pos=pos, neg=neg,
        )


def _trim(counts: np.ndarray) -> list[int]:
    nz = np.flatnonzero(counts)
    return [] if nz.size == 0 else [int(c) for c in counts[: nz[-1] + 1]]


def _json_float(v: float) -> float:
    return float(v) if math.isfinite(v) else 0.0
