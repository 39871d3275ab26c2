"""MobileNetV2: size, width multiplier, ONNX parity."""

from __future__ import annotations

import pytest
import torch

from edgeopt.errors import ConfigError
from edgeopt.models.mobilenet_v2 import make_divisible, mobilenet_v2, mobilenet_v2_factory


def test_mobilenet_v2_matches_torchvision_size() -> None:
    assert sum(p.numel() for p in mobilenet_v2().parameters()) == 3_504_872  # torchvision.models.mobilenet_v2


def test_width_mult_and_make_divisible() -> None:
    assert make_divisible(32 * 0.5) == 16 and make_divisible(37) == 40 and make_divisible(3) == 8
    small = mobilenet_v2(num_classes=10, width_mult=0.5).eval()
    with torch.no_grad():
        assert small(torch.zeros(1, 3, 96, 96)).shape == (1, 10)
    with pytest.raises(ConfigError):
        mobilenet_v2(width_mult=0)


def test_mobilenet_v2_factory_onnx(onnx_parity) -> None:
    model = mobilenet_v2_factory()
    assert not model.training and model.edgeopt_inputs[0].shape == ("batch", 3, 224, 224)
    assert onnx_parity(model, (2, 3, 224, 224)).shape == (3, 1000)
