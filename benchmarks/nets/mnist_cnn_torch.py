"""The third-party MNIST CNN (shared/data/mnist/mnist_cnn.onnx) rewritten in torch, weights read from the ONNX file."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from onnx import numpy_helper
from torch import nn

from edgeopt.artifacts.base import TensorSpec


class MnistCnn(nn.Module):
    """4 conv + 2 max-pool + 2 linear, as in the ONNX graph."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 32, 3)
        self.conv3 = nn.Conv2d(32, 64, 3)
        self.conv4 = nn.Conv2d(64, 64, 3)
        self.fc1 = nn.Linear(1024, 128)
        self.fc2 = nn.Linear(128, 10)
        self.edgeopt_inputs = [TensorSpec("input", ("batch", 1, 28, 28))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv2(torch.relu(self.conv1(x)))), 2)
        x = torch.max_pool2d(torch.relu(self.conv4(torch.relu(self.conv3(x)))), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def mnist_cnn_from_onnx(path: Path) -> MnistCnn:
    """Build the torch twin and copy every initializer of the ONNX model into it."""
    net = MnistCnn()
    inits = onnx.load(str(path)).graph.initializer
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in inits}
    net.load_state_dict(weights, strict=True)
    return net.eval()
