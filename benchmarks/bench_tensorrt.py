"""Issue 10 figures: the TensorRT-ready INT8 ONNX (trt-gpu/int8) against edgeopt's ORT INT8 build (ort-cpu/int8).

For each model: compile both INT8 variants with edgeopt, run the placement checker on the TensorRT-ready ONNX, then
run both under ONNX Runtime (the TensorRT build stands in for TensorRT's INT8 arithmetic) on the evaluation data and
report top-1 agreement between them, and each one's top-1 accuracy beside FP32. Prints a markdown table. Each build
is also run op by op (ORT_DISABLE_ALL) and compared with itself under ORT's fused kernels: how far apart two
evaluations of one build are, the noise floor any agreement figure sits on.

Run: .venv/bin/python benchmarks/bench_tensorrt.py [--eval-samples N] [--cifar-model PATH.onnx|package.module:factory]
     [--resnet18-cifar-model PATH.onnx|package.module:factory] [--only MODEL]
     [--methods minmax entropy percentile mse] [--eval-in-compile] [--bias-correction]
     [--calibration-method minmax|entropy|percentile|mse] [--keep-float NODE ...] [--target trt-gpu|trt-gpu-typed]
(--keep-float: these Conv/Gemm nodes stay float in both INT8 builds, FP16 in the engine;
--calibration-method: the one calibration table both INT8 builds are emitted from, as `edgeopt compile
--calibration-method`; --methods varies the TensorRT-ready build's method alone)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"

import edgeopt  # noqa: E402
from edgeopt.artifacts.onnx_model import OnnxModel  # noqa: E402
from edgeopt.backends.ort.backend import OrtBackend  # noqa: E402
from edgeopt.backends.tensorrt.placement import check_placement, summarize  # noqa: E402
from edgeopt.data import load_data  # noqa: E402
from edgeopt.quant.record import read_record  # noqa: E402


def _predictions(model_path: Path, data: Any, threads: int, level: str = "all") -> np.ndarray:
    """Top-1 predictions of an ONNX file under ONNX Runtime on every sample of `data`. `level`: ORT's graph
    optimization level; "disable" runs every QuantizeLinear / DequantizeLinear / float op as written (the Q/DQ
    graph's exact semantics), "all" fuses them into ORT's own kernels, which sum in another order."""
    from edgeopt.backends.base import run_batched

    runner = OrtBackend({"graph_optimization_level": level}).load(OnnxModel.from_file(model_path), threads=threads)
    preds = [np.argmax(run_batched(runner, b.inputs)[0], axis=1) for b in data.batches(32)]
    return np.concatenate(preds)


def _keeping_float(target: str, common: dict[str, Any], nodes: list[str]) -> dict[str, Any]:
    """The target's standard 'int8' variant with `nodes` kept float (its quantize pass's exclude_nodes)."""
    from edgeopt.config import CompileConfig
    from edgeopt.passes.onnx.quantize import quantized_variants
    from edgeopt.targets import get_target

    cfg = CompileConfig.build({"model": "-", "quantize": "static", **common})
    spec = next(v for v in quantized_variants(get_target(target), cfg) if v.name == "int8")
    *chain, step = spec.passes
    ((last, opts),) = step.items()  # the quantize pass and its options
    return {"name": "int8-kept", "precision": "int8", "passes": [*chain, {last: {**opts, "exclude_nodes": nodes}}]}


def bench_model(name: str, model: Any, calib: Path, evaluation: Path, work: Path, eval_samples: int | None,
                threads: int, methods: list[str] | None = None, eval_in_compile: bool = False,
                bias_correction: bool = False, calibration_method: str = "minmax",
                keep_float: list[str] | None = None, target: str = "trt-gpu") -> dict[str, Any]:
    """Compile ort-cpu/int8 and trt-gpu/int8, check placement, compare predictions on the evaluation data.

    `methods`: also build the TensorRT-ready ONNX with these calibration methods (variants int8-<method>) and report
    each one's agreement with the same ORT INT8 build. `eval_in_compile`: give both INT8 compiles the evaluation
    data, so their accuracy fallbacks are judged on it (as bench_efficientnet_peers.py does) rather than on agreement
    over the calibration images. `bias_correction`: both INT8 builds correct their biases (--bias-correction).
    `calibration_method`: the range method of both builds (compile's calibration_method). `keep_float`: both INT8
    builds keep these nodes float (the ORT build may keep more, by its accuracy fallback). `target`: trt-gpu (FP32
    ONNX, TensorRT 10's FP16/INT8 builder flags) or trt-gpu-typed (FP16-typed ONNX for strongly typed builds)."""
    start = time.perf_counter()
    common = {"calibration": str(calib), "cache_dir": str(work / "cache"), "latency": {"iters": 5, "threads": threads},
              "bias_correction": bias_correction, "calibration_method": calibration_method}
    extra = [{"name": f"int8-{m}", "precision": "int8", "passes": ["dynamic_batch", "simplify",
                                                                   {"qdq_tensorrt": {"method": m, "bias_correction":
                                                                                     bias_correction}}]}
             for m in methods or []]
    int8 = "int8-kept" if keep_float else "int8"
    trt_extra = [*extra, _keeping_float(target, common, keep_float)] if keep_float else extra
    ort_extra = [_keeping_float("ort-cpu", common, keep_float)] if keep_float else []
    trt = edgeopt.compile(model, target=target, quantize="static",
                          variants=[int8, "fp16", *(e["name"] for e in extra)], extra_variants=trt_extra,
                          out=str(work / name / "trt"), data=str(evaluation) if eval_in_compile else None, **common)
    wall = time.perf_counter() - start
    ort = edgeopt.compile(model, target="ort-cpu", quantize="static", variants=[int8], extra_variants=ort_extra,
                          out=str(work / name / "ort"), data=str(evaluation) if eval_in_compile else None, **common)
    rows = {v["name"]: v for v in trt.report["variants"]}
    trt_path, ort_path = trt.artifacts[f"{target}/{int8}"], ort.artifacts[f"ort-cpu/{int8}"]
    violations = check_placement(onnx.load(str(trt_path)))
    float_path = trt.artifacts[f"{target}/fp16"]  # the float model as TensorRT gets it (dynamic batch, simplified)
    data = load_data(str(evaluation), OnnxModel.from_file(trt_path).input_specs())
    if eval_samples:
        data = data.subset(0, eval_samples)
    labels = data.labels
    trt_pred = _predictions(trt_path, data, threads)
    ort_pred = _predictions(ort_path, data, threads)
    out: dict[str, Any] = {
        "model": name, "target": target, "n": len(data), "calibration_method": calibration_method,
        "trt_compile_s": round(wall, 1),
        "violations": len(violations), **summarize(violations),
        "agreement_trt_vs_ort_int8": float(np.mean(trt_pred == ort_pred)),
        "trt_status": rows[f"{target}/{int8}"]["status"],
        "trt_precision": rows[f"{target}/{int8}"].get("trt_precision"),
        "build_command": rows[f"{target}/{int8}"].get("build_command"), "keep_float": keep_float or [],
        "ort_float_nodes": (read_record(onnx.load(str(ort_path))) or {}).get("float_nodes"),
        "trt_float_nodes": (read_record(onnx.load(str(trt_path))) or {}).get("float_nodes"),
    }
    out["agreement_by_method"] = {
        m: float(np.mean(_predictions(trt.artifacts[f"{target}/int8-{m}"], data, threads) == ort_pred))
        for m in methods or []}
    ref = _predictions(float_path, data, threads)
    # The same two files run op by op: how far apart two evaluations of ONE build are (the noise floor of agreement).
    trt_exact, ort_exact = _predictions(trt_path, data, threads, "disable"), _predictions(ort_path, data, threads,
                                                                                          "disable")
    out["trt_self_agreement"] = float(np.mean(trt_pred == trt_exact))
    out["ort_self_agreement"] = float(np.mean(ort_pred == ort_exact))
    out["agreement_trt_exact_vs_ort_int8"] = float(np.mean(trt_exact == ort_pred))
    out["agreement_trt_vs_fp32"] = float(np.mean(trt_pred == ref))
    out["agreement_ort_vs_fp32"] = float(np.mean(ort_pred == ref))
    if labels is not None:
        out["top1_fp32"] = float(np.mean(ref == labels))
    if labels is not None:
        out["top1_trt_int8"] = float(np.mean(trt_pred == labels))
        out["top1_ort_int8"] = float(np.mean(ort_pred == labels))
    return out


def models(cifar: str | None, resnet18_cifar: str | None = None) -> list[tuple[str, Any, Path, Path]]:
    """(name, model, calibration recipe, evaluation recipe) for the models available here."""
    cal = REPO / "calibration"
    out: list[tuple[str, Any, Path, Path]] = [
        ("mnist-cnn", str(DATA / "mnist" / "mnist_cnn.onnx"), cal / "mnist-calib.yaml", cal / "mnist-eval.yaml"),
    ]
    if cifar is not None:
        out.append(("cifar10-resnet", str(cifar), cal / "cifar10-train.yaml", cal / "cifar10-test.yaml"))
    else:
        print("skip cifar10-resnet: no trained CIFAR-10 ResNet given (--cifar-model PATH.onnx or "
              "package.module:factory)", file=sys.stderr)
    out.append(("resnet18", "edgeopt.models.resnet:resnet18_factory", cal / "imagenet-calib.yaml",
                cal / "imagenet-eval.yaml"))
    if resnet18_cifar is not None:  # the same network with trained weights: no ImageNet-trained ResNet-18 offline
        out.append(("resnet18-cifar10", str(resnet18_cifar), cal / "cifar10-train.yaml", cal / "cifar10-test.yaml"))
    try:
        from edgeopt.models.efficientnet_lite import efficientnet_lite0_weights_path

        efficientnet_lite0_weights_path()
        out.append(("efficientnet-lite0", "edgeopt.models.efficientnet_lite:efficientnet_lite0_factory",
                    cal / "imagenet-calib.yaml", cal / "imagenet-eval.yaml"))
    except edgeopt.errors.EdgeoptError as exc:
        print(f"skip efficientnet-lite0: {exc}", file=sys.stderr)
    return out


def table(results: list[dict[str, Any]]) -> str:
    """The markdown table of the figures."""
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}%"

    lines = [
        "| model | target | eval n | placement violations | top-1 agreement TRT-ready vs ORT INT8 | TRT-ready vs float "
        "| top-1 float (FP32; FP16-typed on trt-gpu-typed) | top-1 ORT INT8 | top-1 TRT-ready (under ORT) | engine |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r.get('target', 'trt-gpu')} | {r['n']} | {r['violations']} | "
            f"{pct(r['agreement_trt_vs_ort_int8'])} | "
            f"{pct(r.get('agreement_trt_vs_fp32'))} | {pct(r.get('top1_fp32'))} | {pct(r.get('top1_ort_int8'))} | "
            f"{pct(r.get('top1_trt_int8'))} | {r['trt_status']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-samples", type=int, default=None, help="evaluate on the first N samples only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cifar-model", default=None,
                    help="a trained CIFAR-10 ResNet: PATH.onnx or package.module:factory")
    ap.add_argument("--resnet18-cifar-model", default=None,
                    help="the ResNet-18-style network trained on CIFAR-10 (e.g. "
                         "benchmarks.cifar_train:cifar_resnet18_factory): agreement on real data with trained weights")
    ap.add_argument("--only", action="append", help="run only these models")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--methods", nargs="+", choices=["minmax", "entropy", "percentile", "mse"],
                    help="also build the TensorRT-ready ONNX with these calibration methods; agreement for each")
    ap.add_argument("--bias-correction", action="store_true", help="both INT8 builds correct their biases")
    ap.add_argument("--calibration-method", choices=["minmax", "entropy", "percentile", "mse"], default="minmax",
                    help="the range method both INT8 builds use (one calibration table drives both)")
    ap.add_argument("--keep-float", nargs="+", default=None, metavar="NODE",
                    help="Conv/Gemm nodes (ONNX names, e.g. node_Conv_306) both INT8 builds keep float")
    ap.add_argument("--target", choices=["trt-gpu", "trt-gpu-typed"], default="trt-gpu",
                    help="trt-gpu-typed: the FP16-typed ONNX of strongly typed builds (TensorRT 11) stands in")
    ap.add_argument("--eval-in-compile", action="store_true",
                    help="give both INT8 compiles the evaluation data (their fallbacks are then judged on it)")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-trt-") as tmp:
        for name, model, calib, evaluation in models(args.cifar_model, args.resnet18_cifar_model):
            if args.only and name not in args.only:
                continue
            r = bench_model(name, model, calib, evaluation, Path(tmp), args.eval_samples, args.threads, args.methods,
                            args.eval_in_compile, args.bias_correction, args.calibration_method, args.keep_float,
                            args.target)
            print(json.dumps(r), file=sys.stderr)
            results.append(r)
    print(table(results))
    for r in results:
        if r["agreement_by_method"]:
            shown = ", ".join(f"{m} {100 * v:.2f}%" for m, v in r["agreement_by_method"].items())
            print(f"{r['model']}: TensorRT-ready agreement with ORT INT8 by calibration method: {shown}")
    for r in results:
        print(f"{r['model']}: one build, fused ORT kernels vs op by op (ORT_DISABLE_ALL): TensorRT-ready "
              f"{100 * r['trt_self_agreement']:.2f}%, ORT INT8 {100 * r['ort_self_agreement']:.2f}%; "
              f"TensorRT-ready op by op vs ORT INT8 {100 * r['agreement_trt_exact_vs_ort_int8']:.2f}%")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
