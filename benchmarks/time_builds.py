"""Time built artifacts (ONNX, TFLite) against the first one, interleaved in one run; median of per-round ratios.

Run: .venv/bin/python benchmarks/time_builds.py BASE.onnx OTHER.onnx [OTHER.tflite ...] [--iters 200] [--threads 2]
With several thread counts (--threads 1 2) every build is timed at each of them in the same run, named FILE@THREADS;
the baseline is the first build at the first count.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeopt.artifacts.loading import load_model  # noqa: E402
from edgeopt.backends.base import reference_runner  # noqa: E402
from edgeopt.evaluate.latency import time_interleaved  # noqa: E402
from edgeopt.evaluate.machine import machine_info, machine_summary  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    fns = {}
    for path in args.models:
        art = load_model(path)
        x = art.random_inputs(batch=1, seed=0)
        for threads in args.threads:
            runner = reference_runner(art, threads=threads)
            name = Path(path).name if len(args.threads) == 1 else f"{Path(path).name}@{threads}"
            fns[name] = lambda r=runner, x=x: r.run(x)
    names = list(fns)
    lat = time_interleaved(fns, iters=args.iters, warmup=20, baseline=names[0], max_seconds=300)
    info = machine_info(args.threads[0] if len(args.threads) == 1 else None)
    several = f", threads {'/'.join(map(str, args.threads))}" if len(args.threads) > 1 else ""
    print(f"machine: {machine_summary(info)}{several}; load {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    print("| build | median ms | p90 ms | speed-up vs first (median ratio) |\n|---|---|---|---|")
    for n in names:
        st = lat.stats(n)
        print(f"| {n} | {st['median']:.3f} | {st['p90']:.3f} | {lat.speedup(n):.2f}x |")


if __name__ == "__main__":
    main()
