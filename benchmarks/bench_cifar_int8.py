"""CIFAR-10 small ResNet, INT8 on every target from one calibration table (issues 7, 8 and 10).

One `edgeopt.compile` builds ort-cpu fp32/int8, tflite-cpu fp32/int8 and trt-gpu int8 (TensorRT-ready ONNX) from the
same calibration pass (1,000 training images), evaluates all on the 10,000 test images beside the PyTorch reference and
times them interleaved; then top-1 agreement between the INT8 builds is computed on the same images.
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


def int8_speedups(runners: dict, data: object, iters: int) -> dict[str, float]:
    """INT8 vs FP32 of the same target, timed interleaved in one run; median of per-round ratios."""
    x = data.take(1).inputs  # type: ignore[attr-defined]
    out = {}
    for target in ("ort-cpu", "tflite-cpu"):
        fp32, int8 = runners.get(f"{target}/fp32"), runners.get(f"{target}/int8")
        if fp32 is None or int8 is None:
            continue
        lat = time_interleaved({"fp32": lambda r=fp32: r.run(x), "int8": lambda r=int8: r.run(x)}, iters=iters,
                               warmup=10, baseline="fp32", max_seconds=60)
        out[target] = lat.speedup("int8")
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
    for target, sp in speedups.items():
        print(f"{target}: INT8 vs FP32 median ratio (interleaved, batch 1, {args.threads} threads): {sp:.2f}x")
    print()
    base = preds.get("ort-cpu/int8")
    for name, p in sorted(preds.items()):
        if base is not None and name != "ort-cpu/int8":
            print(f"top-1 agreement {name} vs ort-cpu/int8: {np.mean(p == base) * 100:.2f}%")
    print(f"\nrecommended: {report.get('recommended')} ({report['recommendation']['reason']})")


if __name__ == "__main__":
    main()
