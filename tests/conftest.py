"""Shared test fixtures: the real data beside the repository, tiny real ONNX models and a small torch CNN."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

if TYPE_CHECKING:  # torch is imported lazily so that tests without torch collect quickly
    import torch

    from edgeopt.artifacts.onnx_model import OnnxModel

REPO_ROOT = Path(__file__).resolve().parents[1]

OrtRun = Callable[[Path | str, dict[str, np.ndarray]], list[np.ndarray]]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data sets beside the repository (../shared/data); tests needing them skip when it is missing."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout (holds pyproject.toml, targets/ and calibration/)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def mnist_onnx(shared_data: Path) -> Path:
    """The third-party MNIST CNN (opset 9, fixed input [1,1,28,28]) from the shared data."""
    path = shared_data / "mnist" / "mnist_cnn.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def conv_classifier(batch: int | str = 1, seed: int = 0) -> onnx.ModelProto:
    """A tiny real classifier: x[b,1,8,8] -> Conv(4) -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> logits[b,10]."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "conv_b"),
        numpy_helper.from_array(rng.standard_normal((10, 4)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeopt-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save_proto(model: onnx.ModelProto, path: Path) -> Path:
    """Write an ONNX model to `path` and return the path."""
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="session")
def make_conv_classifier() -> Callable[..., onnx.ModelProto]:
    """The tiny classifier builder (batch: int or symbolic name; seed), for tests that change the graph."""
    return conv_classifier


@pytest.fixture(scope="session")
def conv_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny classifier with a fixed batch of 1, as a file (treat as read-only; copy before changing)."""
    return save_proto(conv_classifier(1), tmp_path_factory.mktemp("conv") / "conv.onnx")


@pytest.fixture(scope="session")
def conv_onnx_dynamic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny classifier with a symbolic batch dim, as a file."""
    return save_proto(conv_classifier("batch"), tmp_path_factory.mktemp("conv_dyn") / "conv_dyn.onnx")


@pytest.fixture(scope="session")
def conv_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 float32 samples [24,1,8,8] with labels for the tiny classifier."""
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("conv_data") / "conv_data.npz"
    np.savez(path, x=rng.standard_normal((24, 1, 8, 8)).astype(np.float32), y=rng.integers(0, 10, 24))
    return path


@pytest.fixture(scope="session")
def ort_run() -> OrtRun:
    """Run an ONNX file with a plain single-threaded ONNX Runtime CPU session."""
    import onnxruntime as ort

    def run(path: Path | str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return list(session.run(None, feeds))

    return run


def make_small_cnn() -> torch.nn.Module:
    """A seeded torch CNN for 3x32x32 inputs: Conv -> BatchNorm -> ReLU -> pool -> Linear(10), in eval mode."""
    import torch

    from edgeopt.artifacts.base import TensorSpec

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(8, 10),
        )
        with torch.no_grad():
            bn = net[1]
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)
    net.edgeopt_inputs = [TensorSpec("input", ("batch", 3, 32, 32), "float32")]
    return net.eval()


@pytest.fixture(scope="session")
def small_cnn() -> torch.nn.Module:
    """The small torch CNN (session-wide; tests must not change it)."""
    return make_small_cnn()


@pytest.fixture(scope="session")
def small_cnn_onnx(small_cnn: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> OnnxModel:
    """The small CNN exported once by the export_onnx pass (dynamo, dynamic batch): an OnnxModel."""
    from edgeopt.artifacts.torch_model import TorchModel
    from edgeopt.passes.base import PassContext
    from edgeopt.passes.torch.export_onnx import ExportOnnx

    folder = tmp_path_factory.mktemp("small_cnn_onnx")
    model = TorchModel.from_module(small_cnn, list(small_cnn.edgeopt_inputs))
    return ExportOnnx().run(model, PassContext(work_dir=folder), folder / "small_cnn.onnx")
