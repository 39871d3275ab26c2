"""ResNet reference networks in plain torch: torchvision-style ResNet-18 and the classic CIFAR ResNet-20."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from edgeopt.artifacts.base import TensorSpec
from edgeopt.errors import ConfigError


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection; a 1x1 conv + BN projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def _init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs, unit/zero BN, default Linear: the torchvision initialisation."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet(nn.Module):
    """A ResNet of BasicBlocks: a stem, stages of blocks, global average pooling and a linear classifier."""

    def __init__(self, stem: nn.Module, stages: list[nn.Sequential], width: int, num_classes: int) -> None:
        super().__init__()
        self.stem = stem
        self.layers = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _stage(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
    return nn.Sequential(*[BasicBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(blocks)])


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18 for 224x224 images (torchvision layout: 7x7 stem, max-pool, 4 stages of 64/128/256/512)."""
    stem = nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    widths = [64, 128, 256, 512]
    stages = [_stage(64 if i == 0 else widths[i - 1], w, 2, 1 if i == 0 else 2) for i, w in enumerate(widths)]
    return ResNet(stem, stages, 512, num_classes)


def cifar_resnet(depth: int = 20, num_classes: int = 10, width: int = 16) -> ResNet:
    """CIFAR ResNet (He et al. 2016): depth 6n+2, 3x3 stem, 3 stages of width/2*width/4*width channels."""
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"CIFAR ResNet depth {depth} is not of the form 6n+2", "use 20, 32, 44, 56 or 110")
    if width < 1:
        raise ConfigError(f"CIFAR ResNet width {width} must be positive", "use e.g. width=16")
    n = (depth - 2) // 6
    stem = nn.Sequential(_conv3x3(3, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
    widths = [width, 2 * width, 4 * width]
    stages = [_stage(width if i == 0 else widths[i - 1], w, n, 1 if i == 0 else 2) for i, w in enumerate(widths)]
    return ResNet(stem, stages, 4 * width, num_classes)


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random (seeded) affine parameters and running statistics, so untrained nets are not trivial.

    Running means and variances are first measured on seeded random inputs (so activations keep a sane scale layer by
    layer), then perturbed; weights and biases are drawn at random. Returns the model in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    spec = getattr(model, "edgeopt_inputs", None)
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(0.5 + torch.rand(bn.num_features, generator=gen))
            bn.bias.copy_(0.2 * torch.randn(bn.num_features, generator=gen))
            bn.reset_running_stats()
        if spec:
            # momentum=None is a cumulative average: after one training-mode batch it holds that batch's statistics.
            # One thread, so that the statistics do not depend on the machine's core count.
            saved, threads = [bn.momentum for bn in bns], torch.get_num_threads()
            for bn in bns:
                bn.momentum = None
            torch.set_num_threads(1)
            try:
                model.train()
                model(torch.randn(*spec[0].concrete_shape(batch=4), generator=gen))
            finally:
                torch.set_num_threads(threads)
                for bn, momentum in zip(bns, saved, strict=True):
                    bn.momentum = momentum
        for bn in bns:
            n = bn.num_features
            bn.running_mean.add_(0.1 * torch.randn(n, generator=gen) * bn.running_var.sqrt())
            bn.running_var.mul_(0.75 + 0.5 * torch.rand(n, generator=gen))
            bn.num_batches_tracked.fill_(1)
    return model.eval()


def seeded_model(build: Callable[[], nn.Module], inputs: list[TensorSpec], randomize_bn: bool = True) -> nn.Module:
    """Build a model under torch.manual_seed(0) (global RNG state restored after), tag its inputs, put it in eval."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build()
        model.edgeopt_inputs = inputs
        if randomize_bn:
            randomize_batchnorm(model, seed=0)
    return model.eval()


def resnet18_factory() -> nn.Module:
    """ResNet-18 with deterministic random weights and random BN statistics, in eval mode, input 1x3x224x224."""
    return seeded_model(resnet18, [TensorSpec("input", ("batch", 3, 224, 224), "float32")], randomize_bn=True)


def cifar_resnet20_factory() -> nn.Module:
    """CIFAR ResNet-20 with deterministic random weights and random BN statistics, in eval mode, input 3x32x32."""
    return seeded_model(cifar_resnet, [TensorSpec("input", ("batch", 3, 32, 32), "float32")], randomize_bn=True)
