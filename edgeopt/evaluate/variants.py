"""Measure every built variant beside the reference: accuracy, fidelity and interleaved latency in one run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeopt.artifacts.base import Artifact
from edgeopt.backends.base import Runner, reference_runner, run_batched
from edgeopt.evaluate.accuracy import evaluate_runners
from edgeopt.evaluate.fidelity import FidelityStats
from edgeopt.evaluate.latency import time_interleaved
from edgeopt.progress import Progress

REFERENCE = "reference"


@dataclass
class Measurements:
    """Per-variant metrics keyed by variant name ('reference' is the original model)."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: int | None = None
    runtimes: dict[str, dict[str, Any]] = field(default_factory=dict)


def _latency_inputs(source: Artifact, data: Any, batch: int, seed: int) -> dict[str, np.ndarray]:
    if data is not None and len(data) >= batch:
        return data.take(batch).inputs
    return source.random_inputs(batch=batch, seed=seed)


def measure_variants(
    source: Artifact,
    built: dict[str, tuple[Any, Artifact]],
    data: Any,
    cfg: Any,
    prog: Progress,
) -> Measurements:
    """`built` maps variant name -> (backend instance, artifact). Runs all of them against the reference."""
    threads = cfg.latency.threads or os.cpu_count()
    runners: dict[str, Runner] = {REFERENCE: reference_runner(source, threads=threads)}
    meas = Measurements(threads=threads)
    for name, (backend, art) in built.items():
        try:
            runners[name] = backend.load(art, threads=threads)
        except Exception as exc:  # noqa: BLE001 - reported per variant
            meas.metrics[name] = {"error": f"load failed: {type(exc).__name__}: {str(exc)[:200]}"}
    meas.runtimes = {n: r.describe() for n, r in runners.items()}
    if data is not None:
        subset = data.subset(0, cfg.eval_samples) if cfg.eval_samples else data
        with prog.step(f"evaluate {len(runners)} builds on {len(subset)} samples"):
            evals = evaluate_runners(runners, subset, REFERENCE, batch_size=cfg.eval_batch_size)
    else:
        evals = _random_fidelity(runners, source, cfg.seed)
    for name, ev in evals.items():
        meas.metrics.setdefault(name, {}).update(ev)
    ok = {n: r for n, r in runners.items() if not meas.metrics.get(n, {}).get("error")}
    inputs = _latency_inputs(source, data, cfg.latency.batch, cfg.seed)
    fns = {n: r.latency_call(inputs) for n, r in ok.items()}
    with prog.step(f"time {len(fns)} builds interleaved (batch {cfg.latency.batch}, {threads} threads)"):
        lat = time_interleaved(
            fns, iters=cfg.latency.iters, warmup=cfg.latency.warmup, baseline=REFERENCE,
            seed=cfg.seed, max_seconds=cfg.latency.max_seconds,
        )
    for name, stats in lat.to_dict().items():
        meas.metrics[name]["latency_ms"] = {k: stats[k] for k in ("median", "p90", "p99", "mean", "n", "clock")}
        meas.metrics[name]["speedup_vs_baseline"] = stats["speedup_vs_baseline"]
    return meas


def _random_fidelity(runners: dict[str, Runner], source: Artifact, seed: int) -> dict[str, dict[str, Any]]:
    """Without data: fidelity on a few random inputs (marked as such); no accuracy."""
    inputs = source.random_inputs(batch=4, seed=seed)
    ref = run_batched(runners[REFERENCE], inputs)
    out: dict[str, dict[str, Any]] = {REFERENCE: {"accuracy": None, "fidelity": None, "error": None}}
    for name, r in runners.items():
        if name == REFERENCE:
            continue
        try:
            got = run_batched(r, inputs)
        except Exception as exc:  # noqa: BLE001
            out[name] = {"accuracy": None, "fidelity": None, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            continue
        st = FidelityStats()
        st.update(ref, got)
        out[name] = {"accuracy": None, "fidelity": {**st.result(), "inputs": "random"}, "error": None}
    return out
