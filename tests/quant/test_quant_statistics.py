"""Streaming statistics equal a whole-array computation, whatever the batching; ranges per method are right."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.quant.ranges import METHODS, tensor_range
from edgeopt.quant.statistics import TensorStats, bin_counts, pow2_ceil


def _whole(x: np.ndarray, bins: int = 2048) -> TensorStats:
    """Statistics of all values at once: the reference for streaming."""
    s = TensorStats(num_bins=bins)
    s.update(x)
    return s


@pytest.mark.parametrize("chunks", [1, 3, 17, 200])
def test_streaming_equals_whole_array(chunks: int) -> None:
    rng = np.random.default_rng(0)
    # Growing scale: later batches widen the range several times (bins must merge exactly).
    x = (rng.standard_normal(40_000) * np.linspace(0.01, 30, 40_000)).astype(np.float32)
    ref = _whole(x)
    s = TensorStats()
    for part in np.array_split(x, chunks):
        s.update(part)
    assert (s.min, s.max, s.count, s.hist_range) == (ref.min, ref.max, ref.count, ref.hist_range)
    np.testing.assert_array_equal(s.pos, ref.pos)
    np.testing.assert_array_equal(s.neg, ref.neg)
    # And the whole-array histogram is numpy's over the same edges.
    counts, edges = ref.signed_hist()
    np.testing.assert_array_equal(counts, np.histogram(x, bins=edges)[0])


def test_merge_equals_single_stream() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(5000).astype(np.float32), (rng.standard_normal(5000) * 100).astype(np.float32)
    left, right = _whole(a), _whole(b)
    left.merge(right)
    ref = _whole(np.concatenate([a, b]))
    np.testing.assert_array_equal(left.pos, ref.pos)
    np.testing.assert_array_equal(left.neg, ref.neg)
    assert (left.min, left.max, left.count) == (ref.min, ref.max, ref.count)


def test_zeros_then_values_and_round_trip() -> None:
    s = TensorStats(num_bins=64)
    s.update(np.zeros(10, np.float32))
    assert s.hist_range == 0.0 and s.pos[0] == 10
    s.update(np.array([3.0, -1.0], np.float32))
    assert s.hist_range == 4.0 and s.pos.sum() == 11 and s.neg.sum() == 1
    back = TensorStats.from_dict(s.to_dict(), 64)
    np.testing.assert_array_equal(back.pos, s.pos)
    assert back.min == s.min and back.max == s.max


def test_nan_and_bad_bins_are_refused() -> None:
    with pytest.raises(ValueError, match="NaN or Inf"):
        TensorStats().update(np.array([1.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="Inf"):
        TensorStats().update(np.array([np.inf], np.float32))
    with pytest.raises(ValueError, match="power of two"):
        TensorStats(num_bins=100)


def test_pow2_and_binning_are_exact() -> None:
    assert pow2_ceil(1.0) == 2.0 and pow2_ceil(0.75) == 1.0 and pow2_ceil(0.0) == 0.0
    counts = bin_counts(np.array([0.0, -0.99, 1.0, 3.999, -4.0], np.float32), 4.0, 4)
    assert counts.tolist() == [1, 0, 0, 1, 1, 1, 0, 1]  # [-4,-3) ... [-1,0) | [0,1) [1,2) [2,3) [3,4)
    big = np.random.default_rng(0).uniform(-3, 3, 700_001).astype(np.float32)  # several chunks
    np.testing.assert_array_equal(bin_counts(big, 4.0, 16), np.histogram(big, bins=np.linspace(-4, 4, 33))[0])


@pytest.fixture(scope="module")
def normal_stats() -> tuple[np.ndarray, TensorStats]:
    x = np.random.default_rng(2).standard_normal(200_000).astype(np.float32)
    s = TensorStats()
    for part in np.array_split(x, 9):
        s.update(part)
    return x, s


def test_minmax_range(normal_stats: tuple[np.ndarray, TensorStats]) -> None:
    x, s = normal_stats
    assert tensor_range(s, "minmax") == (float(x.min()), float(x.max()))
    t = max(-float(x.min()), float(x.max()))
    assert tensor_range(s, "minmax", symmetric=True) == (-t, t)


@pytest.mark.parametrize("p", [99.0, 99.9, 99.99])
def test_percentile_range_matches_numpy(normal_stats: tuple[np.ndarray, TensorStats], p: float) -> None:
    x, s = normal_stats
    lo, hi = tensor_range(s, "percentile", percentile=p)
    tol = 1.5 * s.bin_width
    assert lo == pytest.approx(np.percentile(x, 100 - p), abs=tol)
    assert hi == pytest.approx(np.percentile(x, p), abs=tol)
    _, t = tensor_range(s, "percentile", percentile=p, symmetric=True)
    assert t == pytest.approx(np.percentile(np.abs(x), p), abs=tol)


def test_entropy_and_mse_clip_outliers() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([np.abs(rng.standard_normal(100_000)), [60.0]]).astype(np.float32)  # ReLU-like + outlier
    s = _whole(x)
    lo, hi = tensor_range(s, "entropy")
    assert lo == s.min and 2.5 < hi < 20.0
    lo, hi = tensor_range(s, "mse")  # one outlier of 60 costs less than coarse rounding of 100k values: clip a little
    assert lo == s.min and 4.0 < hi < s.max
    for method in METHODS:  # every range lies inside the data's range
        lo, hi = tensor_range(s, method)
        assert s.min <= lo <= hi <= s.max


def test_mse_keeps_a_uniform_range() -> None:
    x = np.random.default_rng(4).uniform(-1, 1, 100_000).astype(np.float32)
    lo, hi = tensor_range(_whole(x), "mse")
    assert lo < -0.95 and hi > 0.95  # nothing to clip: rounding error dominates


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown calibration method"):
        tensor_range(_whole(np.ones(3, np.float32)), "kl")
