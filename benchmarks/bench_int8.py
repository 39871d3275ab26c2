"""Issue 7 figures: static INT8 on the MNIST CNN (accuracy, size, per calibration method), ResNet-18 INT8 vs ORT FP32
(interleaved, 2 threads, batch 1), and calibration peak memory vs sample count (edgeopt streaming vs ORT's calibrator).

Run: .venv/bin/python benchmarks/bench_int8.py [--part mnist resnet memory] [--threads 2] [--iters 300]
Each memory figure comes from its own subprocess (peak RSS via resource.getrusage).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"

import edgeopt  # noqa: E402
from edgeopt.artifacts.onnx_model import OnnxModel  # noqa: E402
from edgeopt.backends.ort.backend import session_options  # noqa: E402
from edgeopt.cache import Cache  # noqa: E402
from edgeopt.data import load_data  # noqa: E402
from edgeopt.evaluate.latency import time_interleaved  # noqa: E402
from edgeopt.evaluate.machine import machine_info, machine_summary  # noqa: E402
from edgeopt.passes.base import PassContext  # noqa: E402
from edgeopt.passes.onnx.quantize_static import QuantizeStatic  # noqa: E402
from edgeopt.quant.record import read_record  # noqa: E402

MNIST = DATA / "mnist" / "mnist_cnn.onnx"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# -- MNIST ------------------------------------------------------------------------------------------------------------
def bench_mnist(work: Path, threads: int) -> dict[str, Any]:
    """edgeopt.compile --quantize static (minmax) on the MNIST CNN, plus the pass alone for each calibration method."""
    t0 = time.perf_counter()
    result = edgeopt.compile(
        str(MNIST), target="ort-cpu", data=str(REPO / "calibration/mnist-eval.yaml"),
        calibration=str(REPO / "calibration/mnist-calib.yaml"), quantize="static", max_accuracy_drop=0.1,
        out=str(work / "mnist"), cache_dir=str(work / "cache"), latency={"iters": 200, "threads": threads},
    )
    wall = time.perf_counter() - t0
    rows = {v["name"]: v for v in result.report["variants"]}
    ref, fp32, int8 = rows["reference"], rows["ort-cpu/fp32"], rows["ort-cpu/int8"]
    out: dict[str, Any] = {
        "compile_wall_s": round(wall, 1),
        "fp32_top1": ref["accuracy"]["top1"], "int8_top1": int8["accuracy"]["top1"],
        "drop_points": round((ref["accuracy"]["top1"] - int8["accuracy"]["top1"]) * 100, 3),
        "n": int8["accuracy"]["n"], "fp32_bytes": ref["size_bytes"], "int8_bytes": int8["size_bytes"],
        "size_ratio": round(ref["size_bytes"] / int8["size_bytes"], 2),
        "int8_speedup_vs_reference": int8["speedup_vs_baseline"],
        "fp32_speedup_vs_reference": fp32["speedup_vs_baseline"],
        "recommended": result.report["recommended"], "methods": {},
    }
    source = OnnxModel.from_file(MNIST)
    calib = load_data(REPO / "calibration/mnist-calib.yaml", source.input_specs())
    ev = load_data(REPO / "calibration/mnist-eval.yaml", source.input_specs())
    for method in ("minmax", "entropy", "percentile", "mse"):
        folder = work / f"mnist-{method}"
        folder.mkdir(parents=True, exist_ok=True)
        ctx = PassContext(work_dir=folder, calibration=calib, eval_data=ev)
        t0 = time.perf_counter()
        built = QuantizeStatic({"method": method, "max_accuracy_drop": 0.1, "threads": threads}).run(
            source, ctx, folder / "int8.onnx")
        record = read_record(built)
        first = record["steps"][0]["score"]
        out["methods"][method] = {
            "first_drop": first["drop_points"], "final_drop": record["score"]["drop_points"],
            "float_nodes": record["float_nodes"], "speedup": record["speed"]["speedup"],
            "wall_s": round(time.perf_counter() - t0, 1),
        }
    return out


# -- ResNet-18 speed --------------------------------------------------------------------------------------------------
def bench_resnet(work: Path, threads: int, iters: int) -> dict[str, Any]:
    """Compile ResNet-18 (224x224) with --quantize static, then time the FP32 and INT8 builds interleaved."""
    t0 = time.perf_counter()
    result = edgeopt.compile(
        "edgeopt.models.resnet:resnet18_factory", target="ort-cpu",
        calibration=str(REPO / "calibration/imagenet-calib.yaml"), calibration_samples=100, quantize="static",
        # Random weights: top-1 agreement between near-tied logits says nothing about quantization quality, so no
        # accuracy budget here (the fallback would keep layers float); this figure is about speed.
        max_accuracy_drop=100.0, out=str(work / "resnet18"), cache_dir=str(work / "cache"),
        latency={"iters": 50, "threads": threads},
    )
    wall = time.perf_counter() - t0
    arts = result.artifacts
    x = {"input": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    timings = {}
    for label, spin in (("during run (edgeopt default)", "during_run"), ("always (ORT default)", "always"),
                        ("off", "off")):
        # Two sessions share the cores; an idle pool that spin-waits after its run ("always") steals the core the
        # other session's next run needs; never spinning ("off") charges every op a thread wake-up. Measured all
        # three ways, the same for both builds.
        runners = {name: _runner(arts[f"ort-cpu/{name}"], threads, spin) for name in ("fp32", "int8")}
        lat = time_interleaved({k: (lambda r=r: r.run(None, x)) for k, r in runners.items()}, iters=iters,
                               warmup=20, baseline="fp32", max_seconds=600)
        ratios = lat.samples_ms["fp32"] / lat.samples_ms["int8"]
        timings[label] = {
            "rounds": int(ratios.size), "fp32_ms": round(float(np.median(lat.samples_ms["fp32"])), 2),
            "int8_ms": round(float(np.median(lat.samples_ms["int8"])), 2),
            "speedup_median": round(float(np.median(ratios)), 2),
            "speedup_p10": round(float(np.percentile(ratios, 10)), 2),
            "speedup_p90": round(float(np.percentile(ratios, 90)), 2),
        }
    row = next(v for v in result.report["variants"] if v["name"] == "ort-cpu/int8")
    record = row.get("quantization") or {}
    return {
        "compile_wall_s": round(wall, 1), "threads": threads, "timings": timings,
        "report_int8_speedup_vs_reference": row["speedup_vs_baseline"],
        "pass_speed": record.get("speed"), "fp32_bytes": arts["ort-cpu/fp32"].stat().st_size,
        "int8_bytes": arts["ort-cpu/int8"].stat().st_size,
    }


def _runner(path: Path, threads: int, spinning: str = "during_run") -> Any:
    """An ORT session as the ort backend makes it (pinned threads, level 'all'; spinning as the backend's option)."""
    import onnxruntime as ort

    so = session_options(threads, "all", spinning=spinning)  # type: ignore[arg-type]
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


# -- calibration memory -----------------------------------------------------------------------------------------------
def make_images(folder: Path, n: int) -> Path:
    """n random 224x224 JPEGs in one class folder (decoded a batch at a time by the image-folder reader)."""
    from PIL import Image

    cls = folder / "c0"
    cls.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        path = cls / f"img_{i:05d}.jpg"
        if not path.exists():
            Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(path, quality=90)
    return folder


def calibration_child(args: argparse.Namespace) -> None:
    """In a fresh process: calibrate `n` samples with edgeopt or ORT and print peak RSS (MB) and time as JSON."""
    logging.disable(logging.WARNING)
    model = OnnxModel.from_file(args.model)
    recipe = {"source": args.images, "format": "imagefolder", "preprocess": {"mean": 127, "std": 128,
              "layout": "NCHW", "dtype": "float32"}, "split": {"start": 0, "stop": args.n}}
    data = load_data(recipe, model.input_specs())
    t0 = time.perf_counter()
    if args.tool == "edgeopt":
        from edgeopt.quant import calibrate, prepare_model

        prepared = prepare_model(model.proto, Path(args.work))
        ranges = calibrate(prepared, data, method=args.method, threads=2).ranges()
    else:
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator

        class Reader(CalibrationDataReader):
            """ORT's reader protocol over the same streamed DataSource, one sample at a time."""

            def __init__(self) -> None:
                self.it = (b.inputs for b in data.batches(1))

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self.it, None)

        method = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}[args.method]
        calibrator = create_calibrator(Path(args.model), augmented_model_path=str(Path(args.work) / "aug.onnx"),
                                       calibrate_method=method)
        calibrator.collect_data(Reader())
        ranges = calibrator.compute_data()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": round(peak_mb, 1), "seconds": round(time.perf_counter() - t0, 1),
                      "tensors": len(list(ranges))}))


def run_child(tool: str, method: str, n: int, model: Path, images: Path, work: Path, cap_gb: float) -> dict[str, Any]:
    """One calibration in a subprocess under an address-space cap (a runaway calibrator fails, not the machine)."""
    cmd = [sys.executable, __file__, "--child", "--tool", tool, "--method", method, "--n", str(n),
           "--model", str(model), "--images", str(images), "--work", str(work)]
    cap = int(cap_gb * 2**30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit, timeout=3600)  # noqa: PLW1509
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
        return {"error": f"failed under the {cap_gb:g} GB address-space cap (exit {proc.returncode}): {last}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_memory(work: Path, counts: list[int], cap_gb: float, ort_counts: list[int]) -> dict[str, Any]:
    """Peak RSS of calibration at each sample count, per method, for edgeopt and ORT."""
    from edgeopt.artifacts.loading import load_model
    from edgeopt.pipeline import Pipeline

    model_path = work / "resnet18.onnx"
    if not model_path.exists():
        src = load_model("edgeopt.models.resnet:resnet18_factory")
        ctx = PassContext(work_dir=work)
        res = Pipeline(["export_onnx", "dynamic_batch", "simplify"]).run(src, ctx, Cache(work / "cache"))
        model_path.write_bytes(Path(res.artifact.path).read_bytes())
    images = make_images(work / "images", max(counts + ort_counts))
    out: dict[str, Any] = {}
    for method in ("entropy", "percentile"):
        for tool, ns in (("edgeopt", counts), ("ort", ort_counts)):
            for n in ns:
                out[f"{tool}/{method}/{n}"] = run_child(tool, method, n, model_path, images, work, cap_gb)
                print(f"memory {tool} {method} n={n}: {out[f'{tool}/{method}/{n}']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", nargs="+", default=["mnist", "resnet", "memory"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--counts", type=int, nargs="+", default=[200, 2000])
    ap.add_argument("--ort-counts", type=int, nargs="+", default=[100, 200, 2000])
    ap.add_argument("--cap-gb", type=float, default=10.0, help="address-space cap of each memory subprocess")
    ap.add_argument("--work", default=None)
    ap.add_argument("--child", action="store_true")
    for name in ("tool", "method", "model", "images"):
        ap.add_argument(f"--{name}")
    ap.add_argument("--n", type=int)
    args = ap.parse_args()
    if args.child:
        calibration_child(args)
        return
    logging.basicConfig(level=logging.ERROR)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-int8-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine_summary(machine_info(args.threads))}; work folder {work}\n")
    results: dict[str, Any] = {}
    if "mnist" in args.part:
        m = results["mnist"] = bench_mnist(work, args.threads)
        print("## MNIST CNN, static INT8 (U8S8 QDQ, per-channel), 1,000 calibration / 9,000 evaluation images\n")
        print(table(["build", "top-1", "drop (points)", "size bytes", "size ratio", "speed-up vs reference"], [
            ["FP32 reference", f"{m['fp32_top1'] * 100:.2f}%", "-", m["fp32_bytes"], "1.00x", "1.00x"],
            ["INT8 (minmax)", f"{m['int8_top1'] * 100:.2f}%", f"{m['drop_points']:.2f}", m["int8_bytes"],
             f"{m['size_ratio']:.2f}x", f"{m['int8_speedup_vs_reference']:.2f}x"],
        ]))
        print("\n" + table(["method", "first build drop", "final drop", "nodes kept float", "speed-up (pass)", "s"], [
            [k, f"{v['first_drop']:.2f}", f"{v['final_drop']:.2f}", ", ".join(v["float_nodes"]) or "-",
             f"{v['speedup']:.2f}x", v["wall_s"]] for k, v in m["methods"].items()
        ]) + "\n")
    if "resnet" in args.part:
        r = results["resnet"] = bench_resnet(work, args.threads, args.iters)
        print(f"## ResNet-18 224x224, batch 1, {r['threads']} threads, FP32 {r['fp32_bytes']} bytes, "
              f"INT8 {r['int8_bytes']} bytes\n")
        print(table(["ORT sessions", "rounds", "FP32 median ms", "INT8 median ms", "INT8 speed-up (median ratio)",
                     "p10", "p90"], [[k, t["rounds"], t["fp32_ms"], t["int8_ms"], f"{t['speedup_median']:.2f}x",
                                      f"{t['speedup_p10']:.2f}x", f"{t['speedup_p90']:.2f}x"]
                                     for k, t in r["timings"].items()]) + "\n")
    if "memory" in args.part:
        mem = results["memory"] = bench_memory(work, args.counts, args.cap_gb, args.ort_counts)
        print(f"## Calibration peak RSS, ResNet-18, 3x224x224 samples (cap {args.cap_gb:g} GB per process)\n")
        rows = []
        for key, v in mem.items():
            tool, method, n = key.split("/")
            rows.append([tool, method, n, v.get("peak_mb", "-"), v.get("seconds", "-"), v.get("error", "")])
        print(table(["calibrator", "method", "samples", "peak RSS MB", "s", "error"], rows))
        for method in ("entropy", "percentile"):
            a, b = mem.get(f"edgeopt/{method}/{min(args.counts)}", {}), mem.get(f"edgeopt/{method}/{max(args.counts)}",
                                                                               {})
            if "peak_mb" in a and "peak_mb" in b:
                print(f"\nedgeopt {method}: peak({max(args.counts)}) / peak({min(args.counts)}) = "
                      f"{b['peak_mb'] / a['peak_mb']:.3f}")
    (work / "bench_int8.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nraw figures: {work / 'bench_int8.json'}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
