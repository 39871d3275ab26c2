"""Range-setting algorithms over streamed statistics: minmax, percentile, entropy (KL) and MSE."""

from __future__ import annotations

from typing import Literal

import numpy as np

from edgeopt.quant.statistics import TensorStats

Method = Literal["minmax", "entropy", "percentile", "mse"]
METHODS: tuple[str, ...] = ("minmax", "entropy", "percentile", "mse")
DEFAULT_PERCENTILE = 99.99
_MAX_KL_CANDIDATES = 512
_MSE_CANDIDATES = 100


def tensor_range(
    stats: TensorStats, method: str, percentile: float = DEFAULT_PERCENTILE, symmetric: bool = False
) -> tuple[float, float]:
    """The (low, high) float range to quantize a tensor with, by `method`; symmetric ranges are (-t, t)."""
    if stats.empty:
        return 0.0, 0.0
    lo, hi = stats.min, stats.max
    amax = max(abs(lo), abs(hi))
    if method == "minmax":
        out = (-amax, amax) if symmetric else (lo, hi)
    elif method == "percentile":
        out = _percentile_range(stats, percentile, symmetric)
    elif method == "entropy":
        signed = lo < 0
        levels = 128 if (symmetric or signed) else 256
        hist = stats.abs_hist() if signed else stats.pos
        t = _kl_threshold(hist, stats.bin_width, levels)
        out = (-t, t) if symmetric else (max(lo, -t), min(hi, t))
    elif method == "mse":
        out = _mse_range(stats, symmetric)
    else:
        raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")
    low, high = float(out[0]), float(out[1])
    if not symmetric:
        low, high = max(low, lo), min(high, hi)
    return low, high


def _quantile(counts: np.ndarray, edges: np.ndarray, q: float) -> float:
    """Value below which a fraction `q` of the histogram's mass lies (linear within a bin)."""
    total = counts.sum()
    if total == 0:
        return 0.0
    target = q * total
    cum = np.cumsum(counts)
    k = int(np.searchsorted(cum, target, side="left"))
    k = min(k, counts.size - 1)
    before = cum[k - 1] if k > 0 else 0
    frac = (target - before) / counts[k] if counts[k] else 0.0
    return float(edges[k] + frac * (edges[k + 1] - edges[k]))


def _percentile_range(stats: TensorStats, percentile: float, symmetric: bool) -> tuple[float, float]:
    q = percentile / 100.0
    if symmetric:
        edges = np.linspace(0.0, stats.hist_range, stats.num_bins + 1)
        t = _quantile(stats.abs_hist(), edges, q)
        return -t, t
    counts, edges = stats.signed_hist()
    return _quantile(counts, edges, 1.0 - q), _quantile(counts, edges, q)


def _kl_threshold(hist: np.ndarray, width: float, levels: int) -> float:
    """TensorRT-style entropy calibration: the clipping threshold whose `levels`-bin quantization of the histogram
    loses the least information (KL divergence), searched over at most 512 candidate thresholds."""
    nz = np.flatnonzero(hist)
    if nz.size == 0:
        return 0.0
    last = int(nz[-1]) + 1
    if last <= levels:
        return last * width
    hist = hist.astype(np.float64)
    hist[0] = hist[1]  # the spike of exact zeros (ReLU outputs) says nothing about the range
    step = max(1, (last - levels) // _MAX_KL_CANDIDATES)
    candidates = list(range(levels, last + 1, step))
    if candidates[-1] != last:
        candidates.append(last)
    tail = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])  # tail[i] = sum(hist[i:])
    best_i, best_kl = last, np.inf
    for i in candidates:
        ref = hist[:i].copy()
        ref[i - 1] += tail[i]
        idx = (np.arange(i) * levels) // i
        nonzero = hist[:i] > 0
        sums = np.bincount(idx, weights=hist[:i], minlength=levels)
        spread = np.bincount(idx, weights=nonzero.astype(np.float64), minlength=levels)
        quant = np.where(nonzero, sums[idx] / np.maximum(spread[idx], 1.0), 0.0)
        p = ref / ref.sum()
        qs = quant.sum()
        if qs <= 0:
            continue
        qn = quant / qs
        mask = p > 0
        kl = float(np.sum(p[mask] * np.log(p[mask] / np.maximum(qn[mask], 1e-12))))
        if kl <= best_kl:  # ties go to the larger threshold (clip less)
            best_kl, best_i = kl, i
    return best_i * width


def _mse_range(stats: TensorStats, symmetric: bool) -> tuple[float, float]:
    """The scaling of the min/max range (by 1%..100%) that minimizes the expected squared quantization error."""
    counts, edges = stats.signed_hist()
    keep = counts > 0
    centers = ((edges[:-1] + edges[1:]) / 2)[keep]
    weights = counts[keep].astype(np.float64)
    alphas = np.linspace(1.0 / _MSE_CANDIDATES, 1.0, _MSE_CANDIDATES)[:, None]
    amax = max(abs(stats.min), abs(stats.max))
    if symmetric:
        t = np.maximum(alphas * amax, 1e-12)
        scale = t / 127.0
        q = np.clip(np.round(centers / scale), -127, 127)
        err = ((centers - q * scale) ** 2 * weights).sum(axis=1)
        best = float(t[int(np.argmin(err)), 0])
        return -best, best
    lo = np.minimum(alphas * stats.min, 0.0)
    hi = np.maximum(alphas * stats.max, 0.0)
    scale = np.maximum(hi - lo, 1e-12) / 255.0
    zp = np.clip(np.round(-lo / scale), 0, 255)
    q = np.clip(np.round(centers / scale) + zp, 0, 255)
    err = ((centers - (q - zp) * scale) ** 2 * weights).sum(axis=1)
    k = int(np.argmin(err))
    return float(alphas[k, 0] * stats.min), float(alphas[k, 0] * stats.max)
