"""The real data beside the repository (../shared/data) through the shipped recipes; skipped when it is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.artifacts.base import TensorSpec
from edgeopt.data import load_data
from edgeopt.errors import DataError

RECIPES = Path(__file__).resolve().parents[2] / "calibration"
MNIST_INPUT = [TensorSpec("input.1", (1, 1, 28, 28))]


def test_mnist_raw(shared_data: Path) -> None:
    data = load_data(shared_data / "mnist")
    assert len(data) == 10_000 and data.has_labels
    assert data.labels[0] == 7 and set(np.unique(data.labels).tolist()) == set(range(10))
    assert data.take(1).inputs["input"].shape == (1, 28, 28)
    with pytest.raises(DataError, match="set preprocess.layout: NCHW"):
        data.validate(MNIST_INPUT)


def test_mnist_recipes(shared_data: Path) -> None:
    calib = load_data(RECIPES / "mnist-calib.yaml", MNIST_INPUT)
    evaluation = load_data(RECIPES / "mnist-eval.yaml", MNIST_INPUT)
    assert len(calib) == 1_000 and len(evaluation) == 9_000
    assert not set(calib.source_indices.tolist()) & set(evaluation.source_indices.tolist())
    assert len(load_data(RECIPES / "mnist.yaml")) == 1_000
    evaluation.validate(MNIST_INPUT, min_samples=9_000)
    first = calib.take(1)
    assert first.labels.tolist() == [7] and first.inputs["input.1"].shape == (1, 1, 28, 28)
    pixels = first.inputs["input.1"]
    assert pixels.dtype == np.float32 and np.isclose(pixels.min(), -0.1307 / 0.3081, atol=1e-5)


def test_cifar10_recipes(shared_data: Path) -> None:
    for split in ("train", "test"):
        data = load_data(RECIPES / f"cifar10-{split}.yaml")
        assert len(data) == 10_000 and data.classes is not None and data.classes[0] == "airplane"
        batch = data.take(4)
        assert batch.inputs["input"].shape == (4, 3, 32, 32) and batch.inputs["input"].dtype == np.float32


def test_imagenet_recipes(shared_data: Path) -> None:
    calib = load_data(RECIPES / "imagenet-calib.yaml")
    evaluation = load_data(RECIPES / "imagenet-eval.yaml")
    assert len(calib) == 300 and len(evaluation) == 700
    assert calib.labels.tolist() == list(range(300)) and evaluation.labels.tolist() == list(range(300, 1000))
    assert calib.classes is not None and calib.classes[0] == "n01440764"
    spec = [TensorSpec("images", ("N", 3, 224, 224))]
    evaluation.subset(0, 8).validate(spec)
    batch = evaluation.take(2)
    assert batch.inputs["input"].shape == (2, 3, 224, 224) and batch.labels.tolist() == [300, 301]
    assert -1.0 <= batch.inputs["input"].min() and batch.inputs["input"].max() <= 128 / 128
