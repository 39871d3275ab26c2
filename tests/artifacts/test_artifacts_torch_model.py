"""TorchModel and load_model: modules, factories, .pt2 archives and the refusal of arbitrary pickles."""

from __future__ import annotations

import copy
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeopt.artifacts.base import ArtifactKind, TensorSpec
from edgeopt.artifacts.loading import load_model
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.artifacts.torch_model import TorchModel
from edgeopt.errors import ConfigError, ModelFileError

SPECS = [TensorSpec("input", ("batch", 3, 32, 32), "float32")]


class Trap:
    """Unpickling this calls open(marker, 'w'): harmless, and the marker file proves the call happened."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


# A float32 whose little-endian bytes start with 0x80, the pickle protocol header: ~1.0000153.
LOOKS_LIKE_PICKLE = float(np.frombuffer(b"\x80\x00\x80\x3f", dtype=np.float32)[0])


class TinyLinear(torch.nn.Module):
    """Linear(4 -> 2) with weights of ones and the given first bias value."""

    def __init__(self, bias0: float) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)
        with torch.no_grad():
            self.fc.weight.fill_(1.0)
            self.fc.bias.copy_(torch.tensor([bias0, 0.5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def _save_pt2(module: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    batch = torch.export.Dim("batch", min=1, max=1024)
    ep = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(ep, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_pt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real torch.export archive of TinyLinear whose raw bias bytes start with 0x80."""
    path = tmp_path_factory.mktemp("pt2") / "tiny.pt2"
    return _save_pt2(TinyLinear(LOOKS_LIKE_PICKLE).eval(), torch.randn(2, 4), path)


@pytest.fixture(scope="module")
def plain_pt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real torch.export archive of TinyLinear where no raw weight file starts with 0x80."""
    path = tmp_path_factory.mktemp("pt2") / "plain.pt2"
    return _save_pt2(TinyLinear(0.25).eval(), torch.randn(2, 4), path)


def test_from_module_hash_run_and_sizes(small_cnn: torch.nn.Module) -> None:
    a, b = TorchModel.from_module(small_cnn, SPECS), TorchModel.from_module(small_cnn, SPECS)
    assert a.kind == ArtifactKind.TORCH and a.sha256 == b.sha256 and len(a.sha256) == 64
    assert a.parameter_count() == sum(p.numel() for p in small_cnn.parameters())
    assert a.size_bytes() == sum(t.numel() * t.element_size() for t in small_cnn.state_dict().values())
    assert a.op_histogram() == {
        "AdaptiveAvgPool2d": 1, "BatchNorm2d": 1, "Conv2d": 1, "Flatten": 1, "Linear": 1, "ReLU": 1,
    }
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    (out,) = a.run({"input": x})
    with torch.no_grad():
        np.testing.assert_array_equal(out, small_cnn(torch.from_numpy(x)).numpy())


def test_hash_covers_weights_and_input_specs(small_cnn: torch.nn.Module) -> None:
    base = TorchModel.from_module(small_cnn, SPECS).sha256
    changed = copy.deepcopy(small_cnn)
    with torch.no_grad():
        changed[5].bias[0] += 1e-3
    assert TorchModel.from_module(changed, SPECS).sha256 != base
    other_specs = [TensorSpec("input", ("batch", 3, 64, 64), "float32")]
    assert TorchModel.from_module(small_cnn, other_specs).sha256 != base


def test_load_model_dispatch(conv_onnx: Path, small_cnn: torch.nn.Module) -> None:
    assert isinstance(load_model(conv_onnx), OnnxModel)
    assert isinstance(load_model(str(conv_onnx)), OnnxModel)
    wrapped = load_model(small_cnn)  # specs come from the module's edgeopt_inputs
    assert isinstance(wrapped, TorchModel) and wrapped.input_specs() == SPECS
    assert load_model(wrapped) is wrapped


def test_module_without_input_shape_is_refused() -> None:
    with pytest.raises(ModelFileError, match="example_inputs"):
        load_model(torch.nn.Linear(3, 2))
    with pytest.raises(ModelFileError, match="cannot compile an object of type int"):
        load_model(42)


def test_factory_strings() -> None:
    model = load_model("edgeopt.models.resnet:cifar_resnet20_factory")
    assert isinstance(model, TorchModel)
    assert model.input_specs() == [TensorSpec("input", ("batch", 3, 32, 32), "float32")]
    with pytest.raises(ModelFileError, match="cannot import module"):
        load_model("edgeopt_no_such_module:build")
    with pytest.raises(ModelFileError, match="no callable 'nope'"):
        load_model("edgeopt.models.resnet:nope")
    with pytest.raises(ModelFileError, match="not an nn.Module"):
        load_model("os:getcwd")
    with pytest.raises(ConfigError, match="input shape"):
        load_model("edgeopt.models.resnet:cifar_resnet")  # a bare network: no edgeopt_inputs


def test_unknown_and_missing_files(tmp_path: Path) -> None:
    text = tmp_path / "model.txt"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="cannot tell what kind"):
        load_model(text)
    for name in ("gone.pt", "gone.pt2", "gone.onnx"):
        with pytest.raises(ModelFileError, match="does not exist"):
            load_model(tmp_path / name)


def test_pt2_round_trip(small_cnn: torch.nn.Module, tmp_path: Path) -> None:
    path = _save_pt2(small_cnn, torch.randn(2, 3, 32, 32), tmp_path / "cnn.pt2")
    loaded = load_model(path)
    assert isinstance(loaded, TorchModel) and loaded.path == path
    assert loaded.input_specs()[0].shape == ("batch", 3, 32, 32)
    x = np.random.default_rng(1).standard_normal((5, 3, 32, 32)).astype(np.float32)
    name = loaded.input_specs()[0].name
    with torch.no_grad():
        np.testing.assert_allclose(loaded.run({name: x})[0], small_cnn(torch.from_numpy(x)).numpy(), atol=1e-6)


def test_pt2_raw_weights_that_look_like_pickles_load(tiny_pt2: Path) -> None:
    # Raw tensor bytes may start with 0x80 (the pickle protocol header): they must not be taken for pickles.
    with zipfile.ZipFile(tiny_pt2) as zf:
        heads = [zf.read(n)[:1] for n in zf.namelist() if "/weights/weight_" in n]
    assert b"\x80" in heads
    loaded = load_model(tiny_pt2)
    name = loaded.input_specs()[0].name
    out = loaded.run({name: np.ones((3, 4), np.float32)})[0]
    np.testing.assert_allclose(out, np.tile([4 + LOOKS_LIKE_PICKLE, 4.5], (3, 1)), rtol=1e-6)


def test_pt2_with_a_pickled_object_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "called"
    path = tmp_path / "evil.pt2"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(Trap(marker), protocol=2))
        zf.writestr("archive/version", "3\n")
    with pytest.raises(ModelFileError, match="arbitrary pickled objects") as info:
        load_model(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_pt2_with_a_pickle_hidden_as_a_weight_is_refused(plain_pt2: Path, tmp_path: Path, protocol: int) -> None:
    # A real archive whose weights config marks weight_0 as pickled and whose bytes are a pickle that calls
    # something: protocols 0 and 1 have no 0x80 header, so sniffing the first byte is not enough.
    marker = tmp_path / "called"
    path = tmp_path / "evil.pt2"
    with zipfile.ZipFile(plain_pt2) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("model_weights_config.json"):
                config = json.loads(data)
                config["config"]["fc.weight"]["use_pickle"] = True
                data = json.dumps(config).encode()
            elif info.filename.endswith("/weights/weight_0"):
                data = pickle.dumps(Trap(marker), protocol=protocol)
            dst.writestr(info, data)
    assert load_model(plain_pt2).input_specs()  # the untouched archive loads
    with pytest.raises(ModelFileError, match="arbitrary pickled objects"):
        load_model(path)
    assert not marker.exists()


def test_pt2_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "model.pt2"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(ModelFileError, match="not a torch.export .pt2 archive"):
        load_model(path)


def test_pt_with_a_pickled_object_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "called"
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Trap(marker), protocol=2))
    saved = tmp_path / "saved.pt"
    torch.save({"model": Trap(marker)}, saved)  # torch.save's zip format with the object inside
    for path in (raw, saved):
        with pytest.raises(ModelFileError, match="arbitrary pickled objects") as info:
            load_model(path)
        assert "\n" not in str(info.value)
    assert not marker.exists()


def test_pt_state_dict_explains_what_to_pass(small_cnn: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(small_cnn.state_dict(), path)
    with pytest.raises(ModelFileError, match="only weights") as info:
        load_model(path)
    assert "package.module:factory" in str(info.value)
