"""Top-1 agreement between two built artifacts (any backends) on labelled data, with each one's top-1.

Run: .venv/bin/python benchmarks/agreement.py A.onnx|A.tflite B.onnx|B.tflite --data calibration/cifar10-test.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeopt.artifacts.loading import load_model  # noqa: E402
from edgeopt.backends.base import reference_runner, run_batched  # noqa: E402
from edgeopt.data import load_data  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    arts = [load_model(args.a), load_model(args.b)]
    runners = [reference_runner(a, threads=args.threads) for a in arts]
    data = load_data(args.data, arts[0].input_specs())
    preds: list[list[np.ndarray]] = [[], []]
    labels = []
    for batch in data.batches(256):
        for i, r in enumerate(runners):
            preds[i].append(np.argmax(run_batched(r, batch.inputs)[0], axis=1))
        labels.append(batch.labels)
    pa, pb = (np.concatenate(p) for p in preds)
    y = np.concatenate(labels) if labels[0] is not None else None
    print(f"n={pa.size} agreement={np.mean(pa == pb) * 100:.2f}%", end="")
    if y is not None:
        print(f" top1_a={np.mean(pa == y) * 100:.2f}% top1_b={np.mean(pb == y) * 100:.2f}%")


if __name__ == "__main__":
    main()
