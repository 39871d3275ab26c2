"""Fidelity statistics: exact on known arrays, streamed batch by batch equal to one shot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeopt.evaluate.fidelity import FidelityStats, compare_outputs


def test_identical_outputs() -> None:
    ref = [np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)]
    stats = compare_outputs(ref, [ref[0].copy()])
    assert stats["max_abs"] == 0.0 and stats["max_abs_rel"] == 0.0
    assert math.isclose(stats["cosine"], 1.0, abs_tol=1e-12) and stats["top1_agreement"] == 1.0


def test_known_differences() -> None:
    ref = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    got = np.array([[1.0, 0.0, 0.5], [0.0, 0.0, 2.0]])  # second row changes its argmax
    stats = compare_outputs([ref], [got])
    assert stats["max_abs"] == 2.0 and stats["max_abs_rel"] == 1.0
    assert stats["top1_agreement"] == 0.5
    expected_cos = float((ref * got).sum() / (np.linalg.norm(ref) * np.linalg.norm(got)))
    assert math.isclose(stats["cosine"], expected_cos, rel_tol=1e-12)


def test_streaming_equals_one_shot() -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((10, 5))
    got = ref + 0.01 * rng.standard_normal((10, 5))
    feat_ref, feat_got = rng.standard_normal((10, 3, 2)), rng.standard_normal((10, 3, 2))
    streamed = FidelityStats()
    for s in (slice(0, 3), slice(3, 10)):
        streamed.update([ref[s], feat_ref[s]], [got[s], feat_got[s]])
    one_shot = compare_outputs([ref, feat_ref], [got, feat_got])
    for key, value in one_shot.items():
        assert math.isclose(streamed.result()[key], value, rel_tol=1e-9), key


def test_mismatches_and_zeros() -> None:
    stats = compare_outputs([np.zeros((2, 3))], [np.zeros((2, 4))])
    assert stats["max_abs"] == float("inf") and stats["cosine"] == 0.0 and "[2, 3] vs [2, 4]" in stats["error"]
    assert "1 outputs vs 2" in compare_outputs([np.zeros(2)], [np.zeros(2), np.zeros(2)])["error"]
    zeros = compare_outputs([np.zeros((2, 3))], [np.zeros((2, 3))])
    assert zeros["cosine"] == 1.0
    # A single score per sample has no top-1 to agree on.
    assert compare_outputs([np.ones((4, 1))], [np.ones((4, 1))])["top1_agreement"] is None


def test_per_sample_cosine_judges_each_embedding() -> None:
    """A large-norm sample cannot hide a small one that points the wrong way (the overall cosine would)."""
    ref = np.array([[100.0, 0.0], [0.0, 1.0]], np.float32)
    got = np.array([[100.0, 0.0], [0.0, -1.0]], np.float32)
    res = compare_outputs([ref], [got])
    assert res["cosine"] > 0.999
    assert res["sample_cosine_mean"] == pytest.approx(0.0) and res["sample_cosine_min"] == pytest.approx(-1.0)
    zeros = compare_outputs([np.zeros((2, 3), np.float32)], [np.zeros((2, 3), np.float32)])
    assert zeros["sample_cosine_mean"] == 1.0
