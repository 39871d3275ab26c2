"""Fixtures of the quantization tests; the model builders live in quant_builders.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from quant_builders import dw_cnn, make_source, mlp, no_compute  # noqa: F401 - re-exported for fixtures

from edgeopt.artifacts.onnx_model import OnnxModel


@pytest.fixture(scope="session")
def cnn() -> onnx.ModelProto:
    """The depthwise CNN with a symbolic batch."""
    return dw_cnn()


@pytest.fixture(scope="session")
def cnn_file(tmp_path_factory: pytest.TempPathFactory, cnn: onnx.ModelProto) -> OnnxModel:
    """The depthwise CNN as an OnnxModel on disk."""
    path = tmp_path_factory.mktemp("cnn") / "cnn.onnx"
    path.write_bytes(cnn.SerializeToString())
    return OnnxModel.from_file(path)


@pytest.fixture(scope="session")
def cnn_x() -> np.ndarray:
    """96 seeded inputs for the CNN."""
    return np.random.default_rng(1).standard_normal((96, 3, 12, 12)).astype(np.float32)


@pytest.fixture(scope="session")
def make_data() -> Callable[..., Any]:
    """The DataSource builder (model, x, labels=True)."""
    return make_source


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A scratch folder for a pass."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder
