"""The digits demo model: data split, fast deterministic training to >= 97% test accuracy, ONNX parity."""

from __future__ import annotations

import time

import numpy as np
import torch

from edgeopt.models.digits import DigitsCNN, digits_data, train_digits_cnn
from edgeopt.models.train import accuracy


def test_digits_data_split() -> None:
    data = digits_data()
    assert data["x_train"].shape == (1437, 1, 8, 8) and data["x_test"].shape == (360, 1, 8, 8)
    assert data["x_train"].dtype == np.float32 and data["y_test"].dtype == np.int64
    assert 0.0 <= data["x_train"].min() and data["x_train"].max() <= 1.0
    assert np.bincount(data["y_test"]).min() >= 35  # stratified: every class about 10% of the test set
    np.testing.assert_array_equal(digits_data()["y_test"], data["y_test"])


def test_train_digits_cnn_accuracy_time_and_determinism() -> None:
    start = time.perf_counter()
    model, x_test, y_test = train_digits_cnn(seed=0)
    elapsed = time.perf_counter() - start
    assert accuracy(model, x_test, y_test) >= 0.97
    assert elapsed < 15, f"digits training took {elapsed:.1f}s"
    assert not model.training and model.edgeopt_inputs[0].shape == ("batch", 1, 8, 8)
    again, _, _ = train_digits_cnn(seed=0, epochs=2)
    twice, _, _ = train_digits_cnn(seed=0, epochs=2)
    for a, b in zip(again.state_dict().values(), twice.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_digits_cnn_onnx(onnx_parity) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DigitsCNN().eval()
    assert onnx_parity(model, (2, 1, 8, 8)).shape == (3, 10)
