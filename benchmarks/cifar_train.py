"""The CIFAR-10 small ResNet the benchmarks share: trained once on the 10,000 training images, cached, reused.

Run: .venv/bin/python benchmarks/cifar_train.py [--epochs 12] [--width 16] [--depth 20] [--arch resnet18]
As a model for `edgeopt compile`: benchmarks.cifar_train:cifar_resnet_factory (from the repository root; it trains
on first use), or benchmarks.cifar_train:cifar_resnet_e40_factory for the same network trained 40 epochs.
`--arch resnet18` trains the ResNet-18-style network of edgeopt.models.resnet instead (ImageNet layout: 7x7 stride-2
stem, max-pool, 64-512 channels; depth and width do not apply) on the same 32x32 images, so that the ResNet-18
figures that need trained weights have them: benchmarks.cifar_train:cifar_resnet18_factory.
The weights go to benchmarks/.cache/ (git-ignored), keyed by the training settings.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edgeopt.artifacts.base import TensorSpec  # noqa: E402
from edgeopt.fileio import write_bytes_atomic, write_json_atomic  # noqa: E402
from edgeopt.models.resnet import cifar_resnet, resnet18  # noqa: E402
from edgeopt.models.train import accuracy, train_classifier  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cifar10"
CACHE = REPO / "benchmarks" / ".cache"
# The same preprocessing as calibration/cifar10-{train,test}.yaml: x/255, per-channel mean/std, NCHW float32.
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)
INPUTS = [TensorSpec("input", ("batch", 3, 32, 32), "float32")]
DEFAULTS: dict[str, Any] = {
    "arch": "cifar_resnet", "depth": 20, "width": 16, "epochs": 12, "batch_size": 128, "lr": 0.1, "seed": 0,
}


def load_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 `train` or `test` as normalized NCHW float32 images and int64 labels."""
    arrays = np.load(DATA / f"{split}.npz")
    x = (arrays["x"].astype(np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), arrays["y"].astype(np.int64)


def _key(settings: dict[str, Any]) -> str:
    s = settings
    if s["arch"] == "resnet18":
        return f"resnet18_e{s['epochs']}_b{s['batch_size']}_lr{s['lr']}_s{s['seed']}"
    return f"cifar_resnet{s['depth']}_w{s['width']}_e{s['epochs']}_b{s['batch_size']}_lr{s['lr']}_s{s['seed']}"


def build(arch: str, depth: int, width: int, seed: int) -> nn.Module:
    """The untrained network, seeded, tagged with its input spec."""
    if arch not in ("cifar_resnet", "resnet18"):
        raise SystemExit(f"unknown arch '{arch}': use cifar_resnet or resnet18")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = resnet18(num_classes=10) if arch == "resnet18" else cifar_resnet(depth, 10, width)
    model.edgeopt_inputs = list(INPUTS)
    return model


def trained_cifar_resnet(**overrides: Any) -> tuple[nn.Module, dict[str, Any]]:
    """The trained network (from the cache, or trained now and cached) and its record (test top-1, train time)."""
    settings = {**DEFAULTS, **overrides}
    weights, record = CACHE / f"{_key(settings)}.pt", CACHE / f"{_key(settings)}.json"
    model = build(settings["arch"], settings["depth"], settings["width"], settings["seed"])
    if weights.is_file() and record.is_file():
        model.load_state_dict(torch.load(weights, weights_only=True))
        return model.eval(), json.loads(record.read_text())
    x, y = load_split("train")
    start = time.perf_counter()
    train_classifier(
        model, x, y, epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
        seed=settings["seed"], augment="crop_flip", optimizer="sgd", schedule="onecycle", weight_decay=5e-4,
    )  # fmt: skip
    wall = time.perf_counter() - start
    x_test, y_test = load_split("test")
    info = {
        **settings,
        "train_wall_s": round(wall, 1),
        "test_top1": accuracy(model, x_test, y_test),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    write_bytes_atomic(weights, buf.getvalue())
    write_json_atomic(record, info)
    return model.eval(), info


def cifar_resnet_factory() -> nn.Module:
    """package.module:factory for `edgeopt compile`: the trained ResNet-20 (default settings), input 3x32x32."""
    model, _ = trained_cifar_resnet()
    return model


def cifar_resnet_e40_factory() -> nn.Module:
    """package.module:factory: the same ResNet-20 trained 40 epochs instead of 12 (about 10 min on 2 cores)."""
    model, _ = trained_cifar_resnet(epochs=40)
    return model


def cifar_resnet18_factory() -> nn.Module:
    """package.module:factory: the ResNet-18-style network trained 40 epochs on the CIFAR-10 images (input 3x32x32)."""
    model, _ = trained_cifar_resnet(arch="resnet18", epochs=40)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in DEFAULTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    _, info = trained_cifar_resnet(**vars(args))
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
