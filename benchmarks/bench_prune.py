"""Issue 9 figures: the CIFAR-10 small ResNet pruned to half its MACs and distilled (vs fine-tuned) through
`edgeopt.compile --explore`, INT8 on top, the report.html screenshot, and ResNet-18's latency-budget search.

Run: .venv/bin/python benchmarks/bench_prune.py [--epochs 12] [--lr 0.1] [--blocks 2] [--teacher-epochs 12]
[--skip-resnet18 | --resnet18-only] [--out runs/bench_prune]
(--blocks N: the pruned variants also remove N whole residual blocks before their channels: prune's `blocks`)
The CIFAR teacher comes from benchmarks/cifar_train.py (trained for --teacher-epochs and cached on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import edgeopt  # noqa: E402
from benchmarks.cifar_train import trained_cifar_resnet  # noqa: E402
from edgeopt.evaluate.machine import machine_info, machine_summary  # noqa: E402
from edgeopt.models.resnet import resnet18_factory  # noqa: E402
from edgeopt.targets import VariantSpec, get_target, list_targets  # noqa: E402

CALIB = REPO / "calibration"
SHOT = REPO / "benchmarks" / "cifar10_frontier.png"


def _has_int8() -> bool:
    try:
        import edgeopt.passes.onnx.quantize  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def _row(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in report["variants"] if v["name"] == name)


def _top1(report: dict[str, Any], name: str) -> float:
    return 100.0 * _row(report, name)["accuracy"]["top1"]


def _median(report: dict[str, Any], name: str) -> float:
    return float(_row(report, name)["latency_ms"]["median"])


def _note(report: dict[str, Any], name: str, prefix: str) -> str:
    return next((n for n in _row(report, name)["notes"] if n.startswith(prefix)), "")


def cifar_frontier(
    out: Path, cache: Path, epochs: int, threads: int | None, blocks: int = 0, teacher_epochs: int = 12,
    lr: float = 0.1,
) -> dict[str, Any]:
    """The explore grid on CIFAR-10: unpruned vs pruned to 50% MACs, then nothing / distill / finetune, x FP32/INT8."""
    model, teacher = trained_cifar_resnet(epochs=teacher_epochs)
    int8 = _has_int8()
    targets = ["ort-cpu"] + (["tflite-cpu"] if "tflite-cpu" in list_targets() else [])
    targets = [t for t in targets if get_target(t).availability() is None]
    grid = {
        "prune": [1.0, 0.5],
        "recovery": ["none", "distill", "finetune"],
        "precisions": ["fp32", "int8"] if int8 else ["fp32"],
        # ONNX Runtime's AVX-512 kernels work in blocks of 16 channels: narrower layers are padded back to 16.
        "prune_options": {"round_to": 16, **({"blocks": blocks} if blocks else {})},
        "train_options": {"epochs": epochs, "lr": lr, "augment": "crop_flip", "batch_size": 128},
    }
    quant = {"quantize": "static", "calibration": str(CALIB / "cifar10-train.yaml"), "calibration_samples": 512}
    start = time.perf_counter()
    result = edgeopt.compile(
        model, target=targets, example_inputs=torch.randn(1, 3, 32, 32), data=str(CALIB / "cifar10-test.yaml"),
        train=str(CALIB / "cifar10-train.yaml"), out=str(out), cache_dir=str(cache), explore=grid, progress=True,
        latency={"iters": 300, "warmup": 20, "max_seconds": 90, **({"threads": threads} if threads else {})},
        **(quant if int8 else {}),
    )  # fmt: skip
    report = result.report or {}
    base, dist, fine, raw = (
        "ort-cpu/fp32",
        "ort-cpu/macs50-distill-fp32",
        "ort-cpu/macs50-finetune-fp32",
        "ort-cpu/macs50-fp32",
    )
    seconds = re.compile(r", ([\d.]+) s")
    figures: dict[str, Any] = {
        "teacher": teacher,
        "compile_wall_s": round(time.perf_counter() - start, 1),
        "targets": targets,
        "top1_unpruned_fp32": _top1(report, base),
        "top1_pruned_no_training": _top1(report, raw),
        "top1_pruned_distilled": _top1(report, dist),
        "top1_pruned_finetuned": _top1(report, fine),
        "drop_distilled_points": _top1(report, base) - _top1(report, dist),
        "drop_finetuned_points": _top1(report, base) - _top1(report, fine),
        "prune_note": _note(report, dist, "structured pruning"),
        "distill_note": _note(report, dist, "distilled"),
        "finetune_note": _note(report, fine, "fine-tuned"),
        "latency_ms": {n: _median(report, n) for n in (base, raw, dist, fine)},
        "speedup_distilled_fp32_vs_unpruned_fp32": _median(report, base) / _median(report, dist),
        "recommended": report.get("recommended"),
        "frontier": [{k: p[k] for k in ("name", "quality", "latency_ms", "pareto")} for p in report["frontier"]],
    }
    for key, note in (("distill_wall_s", figures["distill_note"]), ("finetune_wall_s", figures["finetune_note"])):
        found = seconds.search(note)
        figures[key] = float(found.group(1)) if found else None
    if int8:
        q = "ort-cpu/macs50-distill-int8"
        figures["top1_pruned_distilled_int8"] = _top1(report, q)
        figures["drop_int8_points"] = _top1(report, base) - _top1(report, q)
        figures["speedup_int8_vs_unpruned_fp32"] = _median(report, base) / _median(report, q)
        figures["top1_unpruned_int8"] = _top1(report, "ort-cpu/int8")
        figures["speedup_unpruned_int8"] = _median(report, base) / _median(report, "ort-cpu/int8")
    return figures


def batch_latency(artifacts: Path, names: list[str], seconds: float = 20.0) -> dict[str, Any]:
    """ORT builds re-timed interleaved at batch 1 and 32 with 1 and 2 threads: at batch 1 fixed per-op costs weigh on
    a 41 MMAC network, at batch 32 the MAC cut shows fully. Fractions are medians of per-round ratios vs fp32."""
    import numpy as np

    from edgeopt.artifacts.onnx_model import OnnxModel
    from edgeopt.backends.base import get_backend
    from edgeopt.evaluate.latency import time_interleaved

    table: dict[str, Any] = {}
    for threads in (1, 2):
        runners = {n: get_backend("ort")().load(OnnxModel.from_file(artifacts / f"{n}.onnx"), threads=threads)
                   for n in names}  # fmt: skip
        for batch in (1, 32):
            x = {"input": np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32)}
            fns = {n: (lambda r=r, x=x: r.run(x)) for n, r in runners.items()}
            res = time_interleaved(fns, iters=5000, warmup=5, baseline=names[0], max_seconds=seconds)
            table[f"threads{threads}_batch{batch}"] = {
                n: {"median_ms": round(res.stats(n)["median"], 4), "speedup_vs_fp32": round(res.speedup(n) or 0, 3)}
                for n in names
            }
    return table


def screenshot(html: Path, png: Path) -> bool:
    """Render report.html in headless Chromium, as a person would see it (False when chromium is missing)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return False
    with tempfile.TemporaryDirectory() as profile:
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 f"--screenshot={png}", "--window-size=1200,1300", html.resolve().as_uri()]  # fmt: skip
        subprocess.run([browser, *flags], check=True, capture_output=True, timeout=120)
    return png.is_file()


def prune_widths(out: Path, cache: Path) -> dict[str, Any]:
    """Why the pruned CIFAR network's ORT FP32 speed-up stops where it does: the same teacher pruned (no training:
    latency does not depend on the weights) to MAC budgets with kept channels rounded to 16 and to 8, with the output
    channels of each convolution, then timed interleaved at batch 1 and 32 with 1 and 2 threads (batch_latency)."""
    import onnx

    model, _ = trained_cifar_resnet()
    fp32 = next(v for v in get_target("ort-cpu").variants if v.name == "fp32")
    plans = {"macs50-r16": (0.5, 16), "macs50-r8": (0.5, 8), "macs30-r8": (0.3, 8)}
    extra = [VariantSpec(name=n, precision="fp32", passes=[{"prune": {"macs": m, "round_to": r}}, *fp32.passes])
             for n, (m, r) in plans.items()]  # fmt: skip
    edgeopt.compile(
        model, target="ort-cpu", example_inputs=torch.randn(1, 3, 32, 32), out=str(out), cache_dir=str(cache),
        extra_variants=extra, variants=["fp32", *plans], progress=True, latency={"iters": 5, "warmup": 1},
    )  # fmt: skip
    names = [f"ort-cpu-{n}" for n in ["fp32", *plans]]
    load = os.getloadavg()[0]
    timing = batch_latency(out / "artifacts", names)
    widths: dict[str, Any] = {}
    for name in names:
        graph = onnx.load(out / "artifacts" / f"{name}.onnx").graph
        dims = {t.name: list(t.dims) for t in graph.initializer}
        widths[name] = [dims[n.input[1]][0] for n in graph.node if n.op_type in ("Conv", "FusedConv")]
    return {"conv_out_channels": widths, "latency": timing, "load": [round(load, 1), round(os.getloadavg()[0], 1)]}


def resnet18_latency_budget(out: Path, cache: Path, threads: int | None) -> dict[str, Any]:
    """ResNet-18 at 224: the prune pass searches the ratio for 0.5x of the unpruned ORT FP32 latency; the compile
    then times both builds interleaved."""
    model = resnet18_factory()
    fp32 = next(v for v in get_target("ort-cpu").variants if v.name == "fp32")
    budget = VariantSpec(
        name="latency50", precision="fp32", passes=[{"prune": {"latency": 0.5, "latency_seconds": 4.0}}, *fp32.passes]
    )
    start = time.perf_counter()
    result = edgeopt.compile(
        model, target="ort-cpu", example_inputs=torch.randn(1, 3, 224, 224), out=str(out), cache_dir=str(cache),
        extra_variants=[budget], progress=True,
        latency={"iters": 100, "warmup": 5, "max_seconds": 60, **({"threads": threads} if threads else {})},
    )  # fmt: skip
    report = result.report or {}
    base, pruned = "ort-cpu/fp32", "ort-cpu/latency50"
    return {
        "compile_wall_s": round(time.perf_counter() - start, 1),
        "search_note": _note(report, pruned, "latency budget"),
        "prune_note": _note(report, pruned, "structured pruning"),
        "latency_ms": {base: _median(report, base), pruned: _median(report, pruned)},
        "latency_fraction_in_compile": _median(report, pruned) / _median(report, base),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="distill/finetune epochs over the 10k images")
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate of distill and finetune")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_prune"))
    parser.add_argument("--skip-resnet18", action="store_true")
    parser.add_argument("--resnet18-only", action="store_true", help="only ResNet-18's latency-budget search")
    parser.add_argument("--widths-only", action="store_true", help="only the channel-width latency table")
    parser.add_argument("--blocks", type=int, default=0, help="pruned variants also remove this many whole blocks")
    parser.add_argument("--teacher-epochs", type=int, default=12, help="training epochs of the unpruned CIFAR model")
    args = parser.parse_args()
    out = Path(args.out)
    cache = out / "cache"
    figures: dict[str, Any] = {"machine": machine_summary(machine_info(args.threads))}
    if args.resnet18_only:
        figures["resnet18"] = resnet18_latency_budget(out / "resnet18", cache, args.threads)
        print(json.dumps(figures, indent=2, default=str))
        return
    if args.widths_only:
        figures["cifar_widths"] = prune_widths(out / "widths", cache)
        print(json.dumps(figures, indent=2, default=str))
        return
    figures["cifar"] = cifar_frontier(
        out / "cifar", cache, args.epochs, args.threads, args.blocks, args.teacher_epochs, args.lr
    )
    figures["screenshot"] = str(SHOT) if screenshot(out / "cifar" / "report.html", SHOT) else None
    names = ["ort-cpu-fp32", "ort-cpu-macs50-distill-fp32", "ort-cpu-int8", "ort-cpu-macs50-distill-int8"]
    present = [n for n in names if (out / "cifar" / "artifacts" / f"{n}.onnx").is_file()]
    figures["cifar_batch_latency"] = batch_latency(out / "cifar" / "artifacts", present)
    if not args.skip_resnet18:
        figures["resnet18"] = resnet18_latency_budget(out / "resnet18", cache, args.threads)
    (out / "figures.json").write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
