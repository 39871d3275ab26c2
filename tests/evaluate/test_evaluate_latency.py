"""Interleaved latency: every variant once per round in shuffled order, percentiles, ratio-based speed-up."""

from __future__ import annotations

import time

import numpy as np

from edgeopt.evaluate.latency import LatencyResult, time_interleaved
from edgeopt.evaluate.machine import machine_info, machine_summary


def test_interleaved_rounds_and_speedup() -> None:
    calls: list[str] = []

    def make(name: str, seconds: float):
        def fn() -> None:
            calls.append(name)
            time.sleep(seconds)

        return fn

    fns = {"slow": make("slow", 0.004), "fast": make("fast", 0.001)}
    result = time_interleaved(fns, iters=12, warmup=2, baseline="slow", seed=3, block=2)
    # Warm-up, then per round each variant runs block + 1 times in a row (the first call is not timed).
    assert calls.count("slow") == calls.count("fast") == 2 + 12 * 3
    rounds = [tuple(calls[i : i + 6]) for i in range(4, len(calls), 6)]
    assert all(sorted(r) == ["fast"] * 3 + ["slow"] * 3 and r[0] == r[2] and r[3] == r[5] for r in rounds)
    assert len({r[0] for r in rounds}) == 2  # the order is shuffled from round to round
    assert result.stats("fast")["n"] == 12
    assert result.speedup("fast") > 1.5 and result.speedup("slow") == 1.0
    assert result.stats("slow")["median"] >= 4.0
    table = result.to_dict()
    assert set(table["fast"]) >= {"median", "p90", "p99", "mean", "min", "n", "speedup_vs_baseline"}


def test_time_cap_stops_early_after_five_rounds() -> None:
    result = time_interleaved({"a": lambda: time.sleep(0.001)}, iters=1000, warmup=0, max_seconds=0.001, block=1)
    assert 5 <= result.stats("a")["n"] < 1000
    assert result.speedup("a") is None  # no baseline named


def test_stats_and_ratios_are_exact() -> None:
    res = LatencyResult({"base": np.array([2.0, 4.0, 6.0]), "v": np.array([1.0, 1.0, 2.0])}, baseline="base")
    assert res.stats("v")["median"] == 1.0 and res.stats("base")["p90"] == 5.6
    assert res.speedup("v") == 3.0  # median of per-round ratios 2, 4, 3
    assert res.speedup("v", baseline="nope") is None


def test_machine_record() -> None:
    info = machine_info(threads=2)
    assert info["cores"] >= 1 and info["threads"] == 2 and info["arch"]
    assert set(info["isa"]) >= {"avx2", "avx512f", "avx512_vnni", "arm_dotprod"}
    assert {"onnx", "onnxruntime", "numpy"} <= set(info["versions"])
    summary = machine_summary(info)
    assert info["arch"] in summary and "2 threads" in summary and ("AVX2" in summary)


def test_collector_paused_while_timing_and_restored() -> None:
    import gc

    seen: list[bool] = []
    time_interleaved({"a": lambda: seen.append(gc.isenabled())}, iters=5, warmup=1)
    assert seen and not any(seen) and gc.isenabled()


def test_self_timed_calls_record_their_own_clock() -> None:
    """A device call (CUDA events on a GPU) reports its own duration: the harness records that, not the host's."""
    from edgeopt.evaluate.latency import SelfTimed

    device_ms = iter(np.linspace(0.5, 1.5, 2 + 8 * 3))

    def launch() -> float:
        time.sleep(0.003)  # the host waits far longer than the device figure it gets back
        return float(next(device_ms))

    res = time_interleaved({"host": lambda: time.sleep(0.001), "gpu": SelfTimed(launch, "cuda-events")},
                           iters=8, warmup=2, baseline="host", block=2)
    table = res.to_dict()
    assert table["gpu"]["clock"] == "cuda-events" and table["host"]["clock"] == "wall"
    assert 0.5 <= res.stats("gpu")["min"] and res.stats("gpu")["median"] <= 1.5
    assert res.stats("host")["median"] >= 1.0 and res.speedup("gpu") > 0.6


def test_report_says_when_rows_use_another_clock() -> None:
    from edgeopt.report.markdown import clock_note

    row = {"latency_ms": {"median": 1.0, "clock": "wall"}}
    assert clock_note({"variants": [row, {"latency_ms": None}]}) is None
    note = clock_note({"variants": [row, {"latency_ms": {"median": 0.1, "clock": "cuda-events"}}]})
    assert note is not None and note.startswith("Rows timed by cuda-events") and "different clocks" in note
