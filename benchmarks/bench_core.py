"""Issue 6 figures: MNIST compile (accuracy, time, simplify fidelity), cache/byte-identity, PyTorch eager vs ORT FP32.

Run: .venv/bin/python benchmarks/bench_core.py [--iters 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"

import edgeopt  # noqa: E402
from benchmarks.nets.mnist_cnn_torch import mnist_cnn_from_onnx  # noqa: E402
from edgeopt.evaluate.machine import machine_info, machine_summary  # noqa: E402
from edgeopt.models.resnet import resnet18_factory  # noqa: E402


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mnist_compile(cache: Path, out: Path) -> dict:
    """The MNIST acceptance: recipe over the last 9,000 images; top-1, wall time, simplify check, cache reuse."""
    runs, walls = [], []
    for sub in ("a", "b"):  # the second compile must come entirely from the cache
        t0 = time.perf_counter()
        runs.append(
            edgeopt.compile(
                str(DATA / "mnist/mnist_cnn.onnx"),
                target="ort-cpu",
                data=str(REPO / "calibration/mnist-eval.yaml"),
                out=str(out / sub),
                cache_dir=str(cache),
                latency={"iters": 50},
            )
        )
        walls.append(time.perf_counter() - t0)
    r1, r2 = runs
    wall1, wall2 = walls
    v1 = r1.report["variants"][1]
    v2 = r2.report["variants"][1]
    simplify = next(p for p in v1["passes"] if p["pass"] == "simplify")
    return {
        "top1": v1["accuracy"]["top1"],
        "correct": v1["accuracy"]["correct"],
        "n": v1["accuracy"]["n"],
        "wall_s_first": wall1,
        "wall_s_cached": wall2,
        "simplify_max_abs": simplify["check"]["max_abs"],
        "fidelity_max_abs_9000": v1["fidelity"]["max_abs"],
        "second_run_all_cached": all(p["cached"] for p in v2["passes"]),
        "byte_identical": sha(out / "a" / v1["artifact"]) == sha(out / "b" / v2["artifact"]),
    }


def eager_vs_ort(
    name: str, module: torch.nn.Module, shape: tuple, cache: Path, out: Path, iters: int, threads: int
) -> dict:
    """Compile a torch module; the report's speed-up is median(t_eager / t_ort) over interleaved rounds."""
    r = edgeopt.compile(
        module,
        target="ort-cpu",
        example_inputs=torch.randn(*shape),
        out=str(out / name),
        cache_dir=str(cache),
        latency={"iters": iters, "warmup": 10, "threads": threads, "max_seconds": 120},
    )
    ref, v = r.report["variants"][0], r.report["variants"][1]
    x = torch.randn(*shape)
    with torch.inference_mode():
        want = module(x).numpy()
    from edgeopt.backends.ort.backend import OrtBackend

    got = OrtBackend().load(r.variants[0].result.artifact, threads=threads).run({"input": x.numpy()})[0]
    return {
        "model": name,
        "eager_ms": ref["latency_ms"]["median"],
        "ort_ms": v["latency_ms"]["median"],
        "speedup": v["speedup_vs_baseline"],
        "rounds": v["latency_ms"]["n"],
        "max_abs_vs_torch": float(np.max(np.abs(want - got))),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "out"
        mnist = mnist_compile(cache, out)
        rows = [
            eager_vs_ort("resnet18-224", resnet18_factory(), (1, 3, 224, 224), cache, out, args.iters, args.threads),
            eager_vs_ort(
                "mnist-cnn",
                mnist_cnn_from_onnx(DATA / "mnist/mnist_cnn.onnx"),
                (1, 1, 28, 28),
                cache,
                out,
                args.iters,
                args.threads,
            ),
        ]
    info = machine_info(args.threads)
    print(
        f"Machine: {machine_summary(info)}; torch {info['versions']['torch']}, "
        f"onnxruntime {info['versions']['onnxruntime']}; load average {load0:.1f} -> {os.getloadavg()[0]:.1f}\n"
    )
    print("MNIST CNN (last 9,000 test images):", json.dumps(mnist, indent=1))
    print("\n| model | PyTorch eager ms | ORT FP32 ms | speed-up (median ratio) | rounds | max abs vs torch |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['eager_ms']:.3f} | {r['ort_ms']:.3f} | {r['speedup']:.2f}x | {r['rounds']} "
            f"| {r['max_abs_vs_torch']:.2e} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "mnist": mnist, "eager_vs_ort": rows}, indent=2))


if __name__ == "__main__":
    main()
