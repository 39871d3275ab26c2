"""The ONNX Runtime backend: options validated, sessions with pinned threads, fixed-batch models run in pieces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgeopt.artifacts.base import TensorSpec
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.artifacts.torch_model import TorchModel
from edgeopt.backends.base import get_backend, reference_runner, run_batched
from edgeopt.backends.ort.backend import OrtBackend, OrtRunner, session_options
from edgeopt.backends.torch_eager import TorchRunner
from edgeopt.errors import ConfigError


@pytest.fixture
def x5() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)


def test_registry_and_options() -> None:
    assert get_backend("ort") is OrtBackend
    backend = OrtBackend({"graph_optimization_level": "basic", "intra_op_num_threads": 1})
    assert backend.options.graph_optimization_level == "basic"
    with pytest.raises(ConfigError, match="invalid options for backend 'ort': graph_optimisation_level") as info:
        OrtBackend({"graph_optimisation_level": "all"})
    assert "valid: " in str(info.value) and "graph_optimization_level" in str(info.value)
    with pytest.raises(ConfigError, match="graph_optimization_level"):
        OrtBackend({"graph_optimization_level": "fastest"})
    with pytest.raises(ConfigError, match="unknown backend 'onnxruntime'"):
        get_backend("onnxruntime")


def test_session_options_pin_threads() -> None:
    so = session_options(2, "extended")
    assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 1
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    assert session_options(None).intra_op_num_threads == 0  # 0: ONNX Runtime picks


def test_runner_specs_describe_and_numbers(conv_onnx_dynamic: Path, x5: np.ndarray, ort_run) -> None:
    runner = OrtBackend().load(OnnxModel.from_file(conv_onnx_dynamic), threads=1)
    assert isinstance(runner, OrtRunner) and runner.max_batch is None
    assert runner.input_specs() == [TensorSpec("x", ("batch", 1, 8, 8), "float32")]
    info = runner.describe()
    assert info["runtime"] == "onnxruntime" and info["threads"] == 1 and info["version"] == ort.__version__
    assert info["providers"] == ["CPUExecutionProvider"]
    (got,) = runner.run({"x": x5.astype(np.float64)})  # cast to the model's dtype
    np.testing.assert_allclose(got, ort_run(conv_onnx_dynamic, {"x": x5})[0], rtol=0, atol=1e-6)


def test_fixed_batch_model_runs_in_pieces(conv_onnx: Path, conv_onnx_dynamic: Path, x5: np.ndarray) -> None:
    runner = OrtBackend().load(OnnxModel.from_file(conv_onnx), threads=1)
    assert runner.max_batch == 1
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        runner.run({"x": x5})
    (pieces,) = run_batched(runner, {"x": x5})
    (whole,) = OrtBackend().load(OnnxModel.from_file(conv_onnx_dynamic), threads=1).run({"x": x5})
    assert pieces.shape == (5, 10)
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-6)


def test_load_refuses_other_kinds(small_cnn) -> None:
    with pytest.raises(TypeError, match="ONNX"):
        OrtBackend().load(TorchModel.from_module(small_cnn, list(small_cnn.edgeopt_inputs)))


def test_reference_runner_picks_the_runtime(conv_onnx: Path, small_cnn) -> None:
    assert isinstance(reference_runner(OnnxModel.from_file(conv_onnx), threads=1), OrtRunner)
    torch_model = TorchModel.from_module(small_cnn, list(small_cnn.edgeopt_inputs))
    runner = reference_runner(torch_model)
    assert isinstance(runner, TorchRunner) and runner.describe()["runtime"] == "pytorch-eager"
