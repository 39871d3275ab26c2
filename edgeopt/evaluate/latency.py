"""Latency measured honestly: warm-up, many repeats, variants interleaved in one run, median ratios."""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WALL = "wall"


@dataclass(frozen=True)
class SelfTimed:
    """A call that times itself and returns its own duration in ms, which the harness then records instead of the
    host clock: a GPU launch bracketed by CUDA events (`clock` "cuda-events") measures the device's work, which the
    host clock around an asynchronous launch does not."""

    fn: Callable[[], float]
    clock: str


Timeable = Callable[[], Any] | SelfTimed


@dataclass
class LatencyResult:
    """Per-variant timings (ms) and, when a baseline is named, the median of per-round speed-up ratios; `clocks`
    names what measured each variant ("wall": the host's monotonic clock)."""

    samples_ms: dict[str, np.ndarray]
    baseline: str | None
    clocks: dict[str, str] = field(default_factory=dict)

    def stats(self, name: str) -> dict[str, float]:
        t = self.samples_ms[name]
        return {
            "median": float(np.median(t)),
            "p90": float(np.percentile(t, 90)),
            "p99": float(np.percentile(t, 99)),
            "mean": float(np.mean(t)),
            "min": float(np.min(t)),
            "n": int(t.size),
        }

    def speedup(self, name: str, baseline: str | None = None) -> float | None:
        """Median over rounds of t(baseline) / t(name): > 1 means `name` is faster."""
        base = baseline or self.baseline
        if base is None or base not in self.samples_ms:
            return None
        return float(np.median(self.samples_ms[base] / self.samples_ms[name]))

    def to_dict(self) -> dict[str, Any]:
        return {n: {**self.stats(n), "speedup_vs_baseline": self.speedup(n), "clock": self.clocks.get(n, WALL)}
                for n in self.samples_ms}


def time_interleaved(
    fns: dict[str, Timeable],
    iters: int = 100,
    warmup: int = 10,
    baseline: str | None = None,
    seed: int = 0,
    max_seconds: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    block: int = 3,
) -> LatencyResult:
    """Time the callables in rounds, in a shuffled order each round, so drift hits all variants alike.

    Each round runs a variant `block + 1` times in a row and keeps the median of the last `block` calls: the first
    call after a switch pays for the other runtime's threads still spinning, which would otherwise be charged to
    whichever variant runs next. `max_seconds` caps the measuring phase (at least 5 rounds run). A `SelfTimed`
    variant reports its own duration per call (e.g. CUDA events); the others are timed with the host clock.

    Garbage is collected before timing and the collector is paused while timing (as `timeit` does): runtimes left
    unreferenced by earlier steps (evaluation sessions, interpreters) otherwise keep thread pools alive that wake up
    beside the timed one (measured: LiteRT int8 and fp16 builds of a 0.01 ms network at 0.19 ms in a compile report,
    0.011–0.013 ms once collected), and a collection inside a timed call would be charged to it.
    """
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _time_rounds(fns, iters, warmup, baseline, seed, max_seconds, progress, block)
    finally:
        if was_enabled:
            gc.enable()


def _once(fn: Timeable) -> float:
    """Run once; its duration in ms, by its own clock when it has one."""
    if isinstance(fn, SelfTimed):
        return float(fn.fn())
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1e6


def _time_rounds(
    fns: dict[str, Timeable], iters: int, warmup: int, baseline: str | None, seed: int,
    max_seconds: float | None, progress: Callable[[int, int], None] | None, block: int,
) -> LatencyResult:
    names = sorted(fns)
    for _ in range(warmup):
        for n in names:
            _once(fns[n])
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    for r in range(iters):
        order = names[:]
        rng.shuffle(order)
        for n in order:
            _once(fns[n])
            samples[n].append(float(np.median([_once(fns[n]) for _ in range(block)])))
        if progress is not None:
            progress(r + 1, iters)
        if max_seconds is not None and r >= 4 and time.perf_counter() - start > max_seconds:
            break
    clocks = {n: f.clock if isinstance(f, SelfTimed) else WALL for n, f in fns.items()}
    return LatencyResult({n: np.asarray(v) for n, v in samples.items()}, baseline, clocks)
