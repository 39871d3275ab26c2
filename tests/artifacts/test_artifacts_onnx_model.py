"""OnnxModel: safe loading (bad files, external data confined to the model folder), specs, histograms, summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeopt.artifacts.base import ArtifactKind, TensorSpec
from edgeopt.artifacts.onnx_model import OnnxModel, graph_inputs
from edgeopt.errors import ConfigError, ModelFileError
from edgeopt.fileio import sha256_file


def _external_tensor(location: str) -> TensorProto:
    """w[4] float32 stored in an external data file at `location`."""
    w = TensorProto()
    w.name, w.data_type = "w", TensorProto.FLOAT
    w.dims.extend([4])
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    return w


def _external_model(location: str) -> onnx.ModelProto:
    """y = x + w, where w[4] lives in an external data file at `location`."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [_external_tensor(location)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _external_in_subgraph(location: str) -> onnx.ModelProto:
    """y = If(c, x + w, x), where w is an initializer of the then-branch stored at `location`."""
    out = [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])]
    then_branch = helper.make_graph([helper.make_node("Add", ["x", "w"], ["t"])], "then", [], out,
                                    [_external_tensor(location)])
    else_branch = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "else", [], out)
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch)],
        "if_ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_specs_histogram_and_summary(conv_onnx: Path) -> None:
    model = OnnxModel.from_file(conv_onnx)
    assert model.kind == ArtifactKind.ONNX
    assert model.sha256 == sha256_file(conv_onnx) and len(model.sha256) == 64
    assert model.input_specs() == [TensorSpec("x", (1, 1, 8, 8), "float32")]
    assert model.output_specs() == [TensorSpec("logits", (1, 10), "float32")]
    assert model.op_histogram() == {"Conv": 1, "Flatten": 1, "Gemm": 1, "GlobalAveragePool": 1, "Relu": 1}
    assert model.parameter_count() == 4 * 9 + 4 + 40 + 10
    assert model.opset() == 17
    summary = model.summary()
    assert summary["size_bytes"] == conv_onnx.stat().st_size
    assert summary["inputs"] == [{"name": "x", "shape": [1, 1, 8, 8], "dtype": "float32"}]


def test_symbolic_dims(conv_onnx_dynamic: Path) -> None:
    model = OnnxModel.from_file(conv_onnx_dynamic)
    assert model.input_specs()[0].shape == ("batch", 1, 8, 8)
    assert model.output_specs()[0].shape == ("batch", 10)


def test_initializers_listed_as_inputs_are_not_inputs(tmp_path: Path, make_conv_classifier) -> None:
    # Old exporters (IR < 4) list every weight as a graph input too; only the real input counts.
    proto = make_conv_classifier(1)
    for init in proto.graph.initializer:
        proto.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    path = tmp_path / "old_style.onnx"
    path.write_bytes(proto.SerializeToString())
    model = OnnxModel.from_file(path)
    assert len(model.proto.graph.input) == 5
    assert [vi.name for vi in graph_inputs(model.proto)] == ["x"]
    assert [s.name for s in model.input_specs()] == ["x"]


def test_mnist_model_from_the_wild(mnist_onnx: Path) -> None:
    mnist = OnnxModel.from_file(mnist_onnx)
    assert mnist.input_specs() == [TensorSpec("input.1", (1, 1, 28, 28), "float32")]
    assert mnist.op_histogram() == {"Conv": 4, "Flatten": 1, "Gemm": 2, "MaxPool": 2, "Relu": 5}
    assert mnist.opset() == 9


@pytest.mark.parametrize("content", ["truncated", "text", "empty"])
def test_bad_files_are_one_line_model_file_errors(conv_onnx: Path, tmp_path: Path, content: str) -> None:
    data = conv_onnx.read_bytes()
    path = tmp_path / "bad.onnx"
    path.write_bytes({"truncated": data[: len(data) // 2], "text": b"this is not a model\n", "empty": b""}[content])
    with pytest.raises(ModelFileError, match="not a valid ONNX") as info:
        OnnxModel.from_file(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        OnnxModel.from_file(tmp_path / "nope.onnx")
    with pytest.raises(ModelFileError, match="not a file"):
        OnnxModel.from_file(tmp_path)


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin"])
def test_external_data_outside_the_folder_is_refused(tmp_path: Path, location: str) -> None:
    (tmp_path / "secret.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "m.onnx"
    path.write_bytes(_external_model(location).SerializeToString())
    with pytest.raises(ModelFileError, match="outside the model's folder"):
        OnnxModel.from_file(path)


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/hostname"])
def test_external_data_of_a_subgraph_is_checked_too(tmp_path: Path, location: str) -> None:
    (tmp_path / "secret.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "m.onnx"
    path.write_bytes(_external_in_subgraph(location).SerializeToString())
    with pytest.raises(ModelFileError, match="outside the model's folder"):
        OnnxModel.from_file(path)


def test_external_data_of_a_subgraph_inside_the_folder_loads(tmp_path: Path, ort_run) -> None:
    (tmp_path / "w.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    path = tmp_path / "m.onnx"
    path.write_bytes(_external_in_subgraph("w.bin").SerializeToString())
    OnnxModel.from_file(path)
    feeds = {"x": np.ones((1, 4), np.float32), "c": np.array(True)}
    np.testing.assert_array_equal(ort_run(path, feeds)[0], [[1, 2, 3, 4]])


def test_absolute_external_data_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    path = tmp_path / "m.onnx"
    path.write_bytes(_external_model(str(secret)).SerializeToString())
    with pytest.raises(ModelFileError, match="outside the model's folder"):
        OnnxModel.from_file(path)


def test_external_data_inside_the_folder_loads(tmp_path: Path, ort_run) -> None:
    (tmp_path / "w.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    path = tmp_path / "m.onnx"
    path.write_bytes(_external_model("w.bin").SerializeToString())
    model = OnnxModel.from_file(path)
    weight = onnx.numpy_helper.to_array(model.proto.graph.initializer[0])
    np.testing.assert_array_equal(weight, np.arange(4, dtype=np.float32))
    (y,) = ort_run(path, {"x": np.ones((1, 4), np.float32)})
    np.testing.assert_array_equal(y, [[1, 2, 3, 4]])


def test_missing_external_data_file(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(_external_model("w.bin").SerializeToString())
    with pytest.raises(ModelFileError, match="missing"):
        OnnxModel.from_file(path)


def test_tensor_spec_shapes_and_random_inputs() -> None:
    spec = TensorSpec("x", ("batch", 3, 4))
    assert spec.concrete_shape(5) == (5, 3, 4) and not spec.is_static
    assert TensorSpec("x", (2, 3)).is_static
    with pytest.raises(ConfigError, match="--input-shape"):
        TensorSpec("ids", ("batch", "seq")).concrete_shape(1)


def test_random_inputs_are_deterministic_and_typed(conv_onnx_dynamic: Path) -> None:
    model = OnnxModel.from_file(conv_onnx_dynamic)
    a, b = model.random_inputs(batch=3, seed=1), model.random_inputs(batch=3, seed=1)
    assert a["x"].shape == (3, 1, 8, 8) and a["x"].dtype == np.float32
    np.testing.assert_array_equal(a["x"], b["x"])
    assert not np.array_equal(a["x"], model.random_inputs(batch=3, seed=2)["x"])
