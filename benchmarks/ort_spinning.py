"""ONNX Runtime builds timed alone, one process per (model, spinning mode): what each `spinning` option of the ort
backend costs outside an interleaved run (no other session alive, as a deployed model runs).

Modes (edgeopt.backends.ort.backend.Spinning): during_run (edgeopt's default, session.force_spinning_stop), always
(ONNX Runtime's default), off (never spin). Each process warms up 30 runs and reports the median of `--runs` runs at
batch 1; the ratio column divides the first model's median by each model's, per mode.

Run: .venv/bin/python benchmarks/ort_spinning.py FP32.onnx INT8.onnx [--threads 2] [--runs 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = ("during_run", "always", "off")


def _time_alone(path: str, mode: str, threads: int, runs: int) -> float:
    """Median ms of one session (in this process) with spinning `mode`."""
    import numpy as np
    import onnxruntime as ort

    sys.path.insert(0, str(REPO))
    from edgeopt.backends.ort.backend import session_options

    session = ort.InferenceSession(path, session_options(threads, "all", spinning=mode),  # type: ignore[arg-type]
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {}
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        feed[i.name] = np.ones(shape, np.int64) if "int64" in i.type else rng.standard_normal(shape).astype(np.float32)
    for _ in range(30):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_time_alone(args.one[0], args.one[1], args.threads, args.runs)))
        return
    load0 = os.getloadavg()[0]
    ms: dict[str, dict[str, float]] = {}
    for mode in MODES:
        for model in args.models:
            out = subprocess.run([sys.executable, __file__, model, "--one", model, mode, "--threads",
                                  str(args.threads), "--runs", str(args.runs)], capture_output=True, text=True,
                                 check=True)
            ms.setdefault(mode, {})[model] = float(out.stdout.strip().splitlines()[-1])
    print(f"threads {args.threads}, {args.runs} runs each, load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    print("| spinning | " + " | ".join(Path(m).name for m in args.models) + " | first / each |")
    print("|---|" + "---|" * (len(args.models) + 1))
    for mode in MODES:
        first = ms[mode][args.models[0]]
        cells = [f"{ms[mode][m]:.3f} ms" for m in args.models]
        ratios = ", ".join(f"{first / ms[mode][m]:.2f}x" for m in args.models[1:])
        print(f"| {mode} | " + " | ".join(cells) + f" | {ratios} |")


if __name__ == "__main__":
    main()
