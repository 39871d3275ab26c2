"""The generic training loop: augmentation, determinism, validation, restored torch settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeopt.errors import ConfigError, DataError
from edgeopt.models.train import accuracy, crop_flip, train_classifier


def _tiny_net() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 2),
        )


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (65,), generator=gen)
    x = torch.randn(65, 3, 8, 8, generator=gen) + y[:, None, None, None].float()
    return x, y


def test_crop_flip_keeps_shape_and_content() -> None:
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    out = crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    again = crop_flip(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    # Every output pixel is either zero padding or one of the image's own values.
    assert set(out[0].unique().tolist()) <= set(x[0].unique().tolist()) | {0.0}


@pytest.mark.parametrize("optimizer,schedule,augment", [("sgd", "onecycle", None), ("adamw", "cosine", "crop_flip")])
def test_training_is_deterministic_and_learns(optimizer: str, schedule: str, augment: str | None) -> None:
    x, y = _data()
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    kwargs = dict(epochs=8, batch_size=16, lr=0.05, seed=3, augment=augment, progress=False)
    a = train_classifier(_tiny_net(), x, y, optimizer=optimizer, schedule=schedule, num_threads=1, **kwargs)
    b = train_classifier(_tiny_net(), x, y, optimizer=optimizer, schedule=schedule, num_threads=1, **kwargs)
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == det
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    assert not a.training
    if augment is None:
        assert accuracy(a, x, y) > 0.8


def test_training_progress_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _data()
    train_classifier(_tiny_net(), x.numpy(), y.numpy(), epochs=1, batch_size=32, lr=0.01, seed=0)
    captured = capsys.readouterr()
    assert "epoch 1/1" in captured.err and captured.out == ""


def test_bad_settings_are_user_errors() -> None:
    x, y = _data()
    with pytest.raises(ConfigError):
        train_classifier(_tiny_net(), x, y, epochs=0, batch_size=8, lr=0.1, seed=0)
    with pytest.raises(ConfigError, match="augment"):
        train_classifier(_tiny_net(), x, y, epochs=1, batch_size=8, lr=0.1, seed=0, augment="mixup")
    with pytest.raises(DataError):
        train_classifier(_tiny_net(), x, y[:10], epochs=1, batch_size=8, lr=0.1, seed=0)
