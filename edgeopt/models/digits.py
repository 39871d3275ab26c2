"""The demo model: a small CNN for scikit-learn's bundled 8x8 digits, trained in seconds on a CPU."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeopt.artifacts.base import TensorSpec
from edgeopt.models.train import train_classifier

DIGITS_INPUTS = (TensorSpec("input", ("batch", 1, 8, 8), "float32"),)


class DigitsCNN(nn.Module):
    """Conv-BN-ReLU x3 with two max-pools and a linear head: 8x8x1 grayscale in, 10 class logits out."""

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(1, width),
            *block(width, 2 * width),
            nn.MaxPool2d(2),
            *block(2 * width, 4 * width),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(4 * width * 2 * 2, num_classes)
        self.edgeopt_inputs = list(DIGITS_INPUTS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def digits_data(seed: int = 0) -> dict[str, np.ndarray]:
    """The digits dataset split 80/20 (stratified, `seed`): x_train/x_test float32 (N,1,8,8) in [0,1], y int64."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    return {
        "x_train": np.ascontiguousarray(x_train),
        "y_train": np.ascontiguousarray(y_train),
        "x_test": np.ascontiguousarray(x_test),
        "y_test": np.ascontiguousarray(y_test),
    }


def train_digits_cnn(
    seed: int = 0, epochs: int = 20, progress: bool = False, num_threads: int | None = 1
) -> tuple[DigitsCNN, np.ndarray, np.ndarray]:
    """Train DigitsCNN on the fixed split (split seed 0); returns (model in eval mode, x_test, y_test).

    One thread by default so that the weights do not depend on the machine's core count.
    """
    data = digits_data(seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsCNN()
    train_classifier(
        model,
        data["x_train"],
        data["y_train"],
        epochs=epochs,
        batch_size=32,
        lr=3e-3,
        seed=seed,
        progress=progress,
        optimizer="adamw",
        weight_decay=1e-2,
        num_threads=num_threads,
    )
    return model, data["x_test"], data["y_test"]
