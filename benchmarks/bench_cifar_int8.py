"""CIFAR-10 small ResNet, INT8 on every target from one calibration table (issues 7, 8 and 10).

One `edgeopt.compile` builds ort-cpu fp32/int8, tflite-cpu fp32/int8 and trt-gpu int8 (TensorRT-ready ONNX) from the
same calibration pass (1,000 training images), evaluates all on the 10,000 test images beside the PyTorch reference and
times them interleaved (all four FP32 and INT8 builds in one run: each INT8 build against each FP32 build and the
fastest); then top-1 agreement between the INT8 builds is computed on the same images.
Run: .venv/bin/python benchmarks/bench_cifar_int8.py [--threads 2] [--iters 100]
The model is benchmarks.cifar_train:cifar_resnet_factory (trained and cached by benchmarks/cifar_train.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import edgeopt  # noqa: E402
from edgeopt.backends.base import get_backend, run_batched  # noqa: E402
from edgeopt.data import load_data  # noqa: E402
from edgeopt.evaluate.latency import time_interleaved  # noqa: E402
from edgeopt.evaluate.machine import machine_info, machine_summary  # noqa: E402


def predictions(result: edgeopt.CompileResult, data: object, threads: int) -> tuple[dict[str, np.ndarray], dict]:
    """Top-1 predictions of every built variant on the evaluation data (ORT runs the TensorRT-ready ONNX)."""
    preds: dict[str, np.ndarray] = {}
    runners = {}
    for bv in result.variants:
        if bv.result is None:
            continue
        backend = "ort" if bv.planned.target.backend == "tensorrt" else bv.planned.target.backend
        runner = get_backend(backend)().load(bv.result.artifact, threads=threads)
        out = [np.argmax(run_batched(runner, b.inputs)[0], axis=1) for b in data.batches(256)]  # type: ignore[attr-defined]
        preds[bv.planned.name] = np.concatenate(out)
        runners[bv.planned.name] = runner
    return preds, runners


def int8_speedups(runners: dict, data: object, iters: int) -> dict[str, dict[str, float]]:
    """Every FP32 and INT8 build timed interleaved in one run; for each INT8 build, its speed-up (median of per-round
    ratios) over each FP32 build and over the fastest FP32 build."""
    x = data.take(1).inputs  # type: ignore[attr-defined]
    names = [f"{t}/{p}" for p in ("fp32", "int8") for t in ("ort-cpu", "tflite-cpu") if f"{t}/{p}" in runners]
    lat = time_interleaved({n: (lambda r=runners[n]: r.run(x)) for n in names}, iters=iters, warmup=20,
                           baseline=names[0], max_seconds=120)
    fp32 = [n for n in names if n.endswith("/fp32")]
    fastest = min(fp32, key=lambda n: lat.stats(n)["median"])
    out: dict[str, dict[str, float]] = {}
    for n in names:
        if n.endswith("/int8"):
            out[n] = {f"vs {b}": lat.speedup(n, baseline=b) for b in fp32}
            out[n]["vs fastest FP32"] = lat.speedup(n, baseline=fastest)
            out[n]["median ms"] = lat.stats(n)["median"]
    for n in fp32:
        out[n] = {"median ms": lat.stats(n)["median"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "cifar"
        result = edgeopt.compile(
            "benchmarks.cifar_train:cifar_resnet_factory",
            target=["ort-cpu", "tflite-cpu", "trt-gpu"],
            variants=["fp32", "int8"],
            quantize="static",
            calibration=str(REPO / "calibration/cifar10-train.yaml"),
            calibration_samples=1000,
            data=str(REPO / "calibration/cifar10-test.yaml"),
            out=str(out),
            cache_dir=str(REPO / "benchmarks" / ".cache" / "edgeopt-cache"),
            latency={"iters": args.iters, "threads": args.threads, "max_seconds": 120},
            progress=True,
        )
        report = result.report or {}
        data = load_data(str(REPO / "calibration/cifar10-test.yaml"), result.variants[0].result.artifact.input_specs())
        preds, runners = predictions(result, data, args.threads)
        speedups = int8_speedups(runners, data, args.iters)
    ref = report["variants"][0]
    ref_top1 = ref["accuracy"]["top1"]
    machine = machine_summary(machine_info(args.threads))
    print(f"\nMachine: {machine}; load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"Reference (PyTorch eager) top-1 {ref_top1 * 100:.2f}% on {ref['accuracy']['n']} test images\n")
    fp32 = {v["target"]: v for v in report["variants"][1:] if v["precision"] == "fp32"}
    print("| variant | status | top-1 | drop vs FP32 (points) | size MB | latency ms (report) |")
    print("|---|---|---|---|---|---|")
    for v in report["variants"][1:]:
        acc = (v.get("accuracy") or {}).get("top1")
        base = fp32.get(v["target"]) or fp32.get("ort-cpu")
        lat = (v.get("latency_ms") or {}).get("median")
        drop = "-"
        if base and acc is not None and base.get("accuracy"):
            drop = f"{(base['accuracy']['top1'] - acc) * 100:+.2f}"
        acc_s = f"{acc * 100:.2f}%" if acc is not None else "-"
        lat_s = f"{lat:.3f}" if lat else "-"
        print(f"| {v['name']} | {v['status'][:60]} | {acc_s} | {drop} | {v['size_bytes'] / 1e6:.3f} | {lat_s} |")
    print()
    print(f"Latency, all builds interleaved in one run (batch 1, {args.threads} threads, {args.iters} rounds; "
          "speed-up = median of per-round ratios):")
    for name, figures in speedups.items():
        shown = ", ".join(f"{k} {v:.3f}" if k == "median ms" else f"{k} {v:.2f}x" for k, v in figures.items())
        print(f"  {name}: {shown}")
    print()
    base = preds.get("ort-cpu/int8")
    for name, p in sorted(preds.items()):
        if base is not None and name != "ort-cpu/int8":
            print(f"top-1 agreement {name} vs ort-cpu/int8: {np.mean(p == base) * 100:.2f}%")
    print(f"\nrecommended: {report.get('recommended')} ({report['recommendation']['reason']})")


if __name__ == "__main__":
    main()
