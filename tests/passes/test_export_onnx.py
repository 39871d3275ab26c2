"""export_onnx: the dynamo exporter with a dynamic batch, the TorchScript fallback, clean errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgeopt.artifacts.base import TensorSpec
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.artifacts.torch_model import TorchModel
from edgeopt.errors import ConfigError, ModelFileError
from edgeopt.passes.base import PassContext
from edgeopt.passes.torch.export_onnx import ExportOnnx


class DataDependent(torch.nn.Module):
    """Python control flow on a tensor value: torch.export cannot capture it, the TorchScript tracer can."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.fc(x)
        return self.fc(x) * 2


def _torch_out(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@pytest.fixture
def data_dependent() -> TorchModel:
    return TorchModel.from_module(DataDependent(), [TensorSpec("x", ("batch", 4), "float32")])


def test_dynamo_export_structure(small_cnn_onnx: OnnxModel) -> None:
    assert small_cnn_onnx.opset() == 18  # the dynamo exporter's opset (the fallback would give 17)
    ops = small_cnn_onnx.op_histogram()
    assert ops["Conv"] == 1 and ops["Gemm"] == 1
    assert "BatchNormalization" not in ops  # folded into the convolution by the exporter's optimizer
    (spec,) = small_cnn_onnx.input_specs()
    assert spec.name == "input" and spec.shape[1:] == (3, 32, 32) and isinstance(spec.shape[0], str)
    assert isinstance(small_cnn_onnx.output_specs()[0].shape[0], str)


@pytest.mark.parametrize("batch", [1, 5])
def test_dynamo_export_numbers_at_any_batch(small_cnn_onnx: OnnxModel, small_cnn, ort_run, batch: int) -> None:
    x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    (got,) = ort_run(small_cnn_onnx.path, {"input": x})
    assert got.shape == (batch, 10)
    np.testing.assert_allclose(got, _torch_out(small_cnn, x), rtol=0, atol=1e-5)


def test_torchscript_exporter(small_cnn, tmp_path: Path, ort_run) -> None:
    model = TorchModel.from_module(small_cnn, list(small_cnn.edgeopt_inputs))
    before = {k: v.clone() for k, v in small_cnn.state_dict().items()}
    out = ExportOnnx({"exporter": "torchscript"}).run(model, PassContext(work_dir=tmp_path), tmp_path / "ts.onnx")
    assert out.opset() == 17  # the TorchScript exporter is capped at opset 17
    for batch in (1, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        np.testing.assert_allclose(ort_run(out.path, {"input": x})[0], _torch_out(small_cnn, x), atol=1e-5)
    after = small_cnn.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the pass never modifies its input


def test_fixed_batch_export(small_cnn, tmp_path: Path) -> None:
    model = TorchModel.from_module(small_cnn, list(small_cnn.edgeopt_inputs))
    cfg = {"exporter": "torchscript", "dynamic_batch": False}
    out = ExportOnnx(cfg).run(model, PassContext(work_dir=tmp_path), tmp_path / "fixed.onnx")
    assert out.input_specs()[0].shape == (1, 3, 32, 32)


def test_fallback_when_dynamo_fails(data_dependent: TorchModel, tmp_path: Path, ort_run) -> None:
    out = ExportOnnx().run(data_dependent, PassContext(work_dir=tmp_path), tmp_path / "dd.onnx")
    assert out.opset() == 17  # produced by the TorchScript exporter after dynamo gave up
    assert out.op_histogram() == {"Gemm": 1}
    x = np.abs(np.random.default_rng(0).standard_normal((3, 4))).astype(np.float32)  # the traced branch
    np.testing.assert_allclose(ort_run(out.path, {"x": x})[0], _torch_out(data_dependent.module, x), atol=1e-6)


def test_dynamo_only_failure_is_one_clean_line(data_dependent: TorchModel, tmp_path: Path) -> None:
    target = tmp_path / "dd.onnx"
    with pytest.raises(ModelFileError, match="could not be exported to ONNX") as info:
        ExportOnnx({"exporter": "dynamo"}).run(data_dependent, PassContext(work_dir=tmp_path), target)
    message = str(info.value)
    assert "dynamo:" in message and "torchscript:" not in message
    assert "\n" not in message and "\x1b" not in message  # no terminal colour codes in a user message


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="opsett") as info:
        ExportOnnx({"opsett": 17})
    assert "valid fields are" in str(info.value)
    with pytest.raises(ConfigError, match="exporter"):
        ExportOnnx({"exporter": "torchscrpt"})


def test_contract() -> None:
    assert ExportOnnx.input_kind.value == "torch" and ExportOnnx.output_kind.value == "onnx"
    assert ExportOnnx.preserves_semantics and getattr(ExportOnnx, "converts", False)
