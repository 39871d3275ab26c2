"""Why two evaluations of ONE Q/DQ model disagree: rounding flips that cascade from layer to layer.

ONNX Runtime runs a Q/DQ model either op by op (graph optimizations off: every QuantizeLinear, DequantizeLinear and
float Conv as written) or through its fused kernels (the default), which sum in another order. The sums differ in
the last float bits; a value that sits at a rounding boundary then lands on the neighbouring int8 code, the next
layer sees a slightly different input, more values cross a boundary, and so on. This script compiles edgeopt's
TensorRT-ready INT8 build of a network, runs the first N evaluation samples both ways with every QuantizeLinear output
exposed, and prints, per quantized tensor in graph order, the share of int8 codes that differ and by how many steps,
then the top-1 agreement of the two evaluations over the whole evaluation set. A TensorRT engine sums in yet another
order (and in FP16 where the model stays float), so the same spread separates it from any stand-in.

Run: .venv/bin/python benchmarks/qdq_rounding_cascade.py [--model benchmarks.cifar_train:cifar_resnet_factory]
     [--calibration-method percentile] [--samples 50] [--level basic]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import edgeopt  # noqa: E402
from edgeopt.artifacts.onnx_model import OnnxModel  # noqa: E402
from edgeopt.backends.ort.backend import session_options  # noqa: E402
from edgeopt.data import load_data  # noqa: E402
from edgeopt.quant.graph import with_outputs  # noqa: E402

CAL = REPO / "calibration"


def quantized_outputs(model: onnx.ModelProto, level: str, feeds: dict[str, np.ndarray],
                      names: list[str]) -> list[np.ndarray]:
    """The values of tensors `names` (graph outputs first) under ONNX Runtime at optimization `level`."""
    import onnxruntime as ort

    exposed = with_outputs(model, names)
    sess = ort.InferenceSession(exposed.SerializeToString(), session_options(2, level),  # type: ignore[arg-type]
                                providers=["CPUExecutionProvider"])
    return sess.run(names, feeds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="benchmarks.cifar_train:cifar_resnet_factory", help="package.module:factory")
    ap.add_argument("--calibration-method", default="percentile", choices=["minmax", "entropy", "percentile", "mse"])
    ap.add_argument("--samples", type=int, default=50, help="evaluation samples whose int8 codes are compared")
    ap.add_argument("--level", default="basic", choices=["basic", "extended", "all"],
                    help="the ORT optimization level compared with op by op (basic already fuses)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cascade-") as tmp:
        res = edgeopt.compile(args.model, target="trt-gpu", quantize="static", variants=["int8"],
                              calibration=str(CAL / "cifar10-train.yaml"), calibration_method=args.calibration_method,
                              bias_correction=True, data=str(CAL / "cifar10-test.yaml"), out=str(Path(tmp) / "out"),
                              cache_dir=str(Path(tmp) / "cache"))
        path = res.artifacts["trt-gpu/int8"]
        model, specs = onnx.load(str(path)), OnnxModel.from_file(path).input_specs()
    data = load_data(str(CAL / "cifar10-test.yaml"), specs)
    output = model.graph.output[0].name
    codes = [n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    feeds = data.take(args.samples).inputs
    exact = quantized_outputs(model, "disable", feeds, codes)
    fused = quantized_outputs(model, args.level, feeds, codes)
    rows = []
    print("| quantized tensor | int8 codes | differing | largest difference (steps) |\n|---|---|---|---|")
    for name, a, b in zip(codes, exact, fused, strict=True):
        diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
        rows.append({"tensor": name, "codes": int(a.size), "differing": float(np.mean(diff > 0)),
                     "max_steps": int(diff.max())})
        print(f"| {name} | {a.size:,} | {100 * rows[-1]['differing']:.3f}% | {rows[-1]['max_steps']} |")
    agree = []
    for batch in data.batches(500):
        (p,), (q,) = (quantized_outputs(model, lvl, batch.inputs, [output]) for lvl in ("disable", args.level))
        agree.append(np.argmax(p, 1) == np.argmax(q, 1))
    top1 = float(np.mean(np.concatenate(agree)))
    print(f"\ntop-1 agreement of the two evaluations on all {len(data)} evaluation samples: {100 * top1:.2f}%")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "level": args.level, "samples": args.samples,
                                         "tensors": rows, "top1_agreement": top1}, indent=2))


if __name__ == "__main__":
    main()
