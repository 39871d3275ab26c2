"""dynamic_batch (only where a batch of N provably equals N single runs) and fix_batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.errors import EdgeoptError
from edgeopt.passes.base import PassContext
from edgeopt.passes.onnx.batch import DynamicBatch, FixBatch


def _model(nodes: list, x_shape: list, y_shape: list, inits: list | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        inits or [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _softmax_over_batch() -> onnx.ModelProto:
    """Softmax along axis 0: runs at any batch, but every output depends on the other samples."""
    return _model([helper.make_node("Softmax", ["x"], ["y"], axis=0)], [1, 4], [1, 4])


def _batch_into_features() -> onnx.ModelProto:
    """x[1,4] -> Reshape[-1,2] -> MatMul -> Reshape[1,-1] -> y[1,6]: the batch is flattened into the rows."""
    w = np.arange(6, dtype=np.float32).reshape(2, 3) / 6
    inits = [
        numpy_helper.from_array(np.array([-1, 2], np.int64), "rows"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "flat"),
        numpy_helper.from_array(w, "w"),
    ]
    nodes = [
        helper.make_node("Reshape", ["x", "rows"], ["r"]),
        helper.make_node("MatMul", ["r", "w"], ["m"]),
        helper.make_node("Reshape", ["m", "flat"], ["y"]),
    ]
    return _model(nodes, [1, 4], [1, 6], inits)


def _hardcoded_reshape(shared: bool) -> onnx.ModelProto:
    """x[1,2,3] -> Reshape[1,6] -> MatMul -> y[1,3] (safe once the 1 becomes 'copy the batch');
    with `shared`, a second Reshape reads the same shape tensor."""
    w = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(np.array([1, 6], np.int64), "shape"), numpy_helper.from_array(w, "w")]
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["m"])]
    if shared:
        nodes += [
            helper.make_node("Relu", ["x"], ["xr"]),
            helper.make_node("Reshape", ["xr", "shape"], ["r2"]),
            helper.make_node("MatMul", ["r2", "w"], ["m2"]),
            helper.make_node("Add", ["m", "m2"], ["y"]),
        ]
    else:
        nodes[-1].output[0] = "y"
    return _model(nodes, [1, 2, 3], [1, 3], inits)


def _save(proto: onnx.ModelProto, path: Path) -> OnnxModel:
    path.write_bytes(proto.SerializeToString())
    return OnnxModel.from_file(path)


def _per_sample_equals_batch(original: Path, rewritten: Path, x: np.ndarray, name: str) -> None:
    single = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"])
    batched = ort.InferenceSession(str(rewritten), providers=["CPUExecutionProvider"])
    (got,) = batched.run(None, {name: x})
    assert got.shape[0] == x.shape[0]
    for i in range(x.shape[0]):
        (ref,) = single.run(None, {name: x[i : i + 1]})
        np.testing.assert_allclose(got[i : i + 1], ref, rtol=1e-5, atol=1e-5)


def test_mnist_becomes_dynamic(mnist_onnx: Path, tmp_path: Path) -> None:
    model = OnnxModel.from_file(mnist_onnx)
    out = DynamicBatch().run(model, PassContext(work_dir=tmp_path), tmp_path / "dyn.onnx")
    assert out.input_specs()[0].shape == ("batch", 1, 28, 28)
    assert out.output_specs()[0].shape == ("batch", 10)
    assert out.op_histogram() == model.op_histogram()
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    _per_sample_equals_batch(mnist_onnx, out.path, x, "input.1")


def test_tiny_classifier_becomes_dynamic(conv_onnx: Path, tmp_path: Path) -> None:
    ctx = PassContext(work_dir=tmp_path)
    out = DynamicBatch({"dim_name": "n"}).run(OnnxModel.from_file(conv_onnx), ctx, tmp_path / "dyn.onnx")
    assert out.input_specs()[0].shape == ("n", 1, 8, 8)
    x = np.random.default_rng(1).standard_normal((4, 1, 8, 8)).astype(np.float32)
    _per_sample_equals_batch(conv_onnx, out.path, x, "x")
    assert "notes" not in ctx.shared


@pytest.mark.parametrize("shared", [False, True])
def test_hardcoded_reshape_is_rewritten(tmp_path: Path, shared: bool) -> None:
    model = _save(_hardcoded_reshape(shared), tmp_path / "reshape.onnx")
    out = DynamicBatch().run(model, PassContext(work_dir=tmp_path), tmp_path / "dyn.onnx")
    shapes = [numpy_helper.to_array(i) for i in out.proto.graph.initializer if i.dims == [2]]
    assert any(list(s) == [0, 6] for s in shapes)  # the Reshape now copies the batch dim
    if shared:
        # both readers of the shared shape tensor must now copy the batch
        readers = [n for n in out.proto.graph.node if n.op_type == "Reshape"]
        values = {i.name: numpy_helper.to_array(i) for i in out.proto.graph.initializer}
        assert all(list(values[n.input[1]]) == [0, 6] for n in readers)
    x = np.random.default_rng(2).standard_normal((4, 2, 3)).astype(np.float32)
    _per_sample_equals_batch(model.path, out.path, x, "x")


@pytest.mark.parametrize("build", [_softmax_over_batch, _batch_into_features], ids=["softmax0", "reshape"])
def test_refuses_when_batch_mixes_and_keeps_the_model(tmp_path: Path, build) -> None:
    model = _save(build(), tmp_path / "mixed.onnx")
    ctx = PassContext(work_dir=tmp_path)
    out = DynamicBatch().run(model, ctx, tmp_path / "out.onnx")
    assert out.input_specs()[0].shape[0] == 1
    assert out.proto.SerializeToString(deterministic=True) == model.proto.SerializeToString(deterministic=True)
    (note,) = ctx.shared["notes"]
    assert note.startswith("dynamic_batch:") and "differ from per-sample outputs" in note


def test_refusal_can_be_an_error(tmp_path: Path) -> None:
    model = _save(_softmax_over_batch(), tmp_path / "mixed.onnx")
    with pytest.raises(EdgeoptError, match="cannot make the batch dynamic"):
        DynamicBatch({"on_unsafe": "error"}).run(model, PassContext(work_dir=tmp_path), tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_already_dynamic_is_kept_with_a_note(conv_onnx_dynamic: Path, tmp_path: Path) -> None:
    model = OnnxModel.from_file(conv_onnx_dynamic)
    ctx = PassContext(work_dir=tmp_path)
    out = DynamicBatch({"on_unsafe": "error"}).run(model, ctx, tmp_path / "out.onnx")  # not an error
    assert out.input_specs() == model.input_specs()
    assert ctx.shared["notes"] == ["dynamic_batch: already dynamic"]


def test_fixed_batch_other_than_one_is_kept(make_conv_classifier, tmp_path: Path) -> None:
    model = _save(make_conv_classifier(2), tmp_path / "b2.onnx")
    ctx = PassContext(work_dir=tmp_path)
    out = DynamicBatch().run(model, ctx, tmp_path / "out.onnx")
    assert out.input_specs()[0].shape[0] == 2
    assert "not all a fixed batch of 1" in ctx.shared["notes"][0]


def test_fix_batch(conv_onnx_dynamic: Path, tmp_path: Path) -> None:
    model = OnnxModel.from_file(conv_onnx_dynamic)
    out = FixBatch({"batch": 4}).run(model, PassContext(work_dir=tmp_path), tmp_path / "fixed.onnx")
    assert out.input_specs()[0].shape == (4, 1, 8, 8)
    assert out.output_specs()[0].shape == (4, 10)
    x = np.random.default_rng(3).standard_normal((4, 1, 8, 8)).astype(np.float32)
    ref = ort.InferenceSession(str(conv_onnx_dynamic), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    fixed = ort.InferenceSession(str(out.path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(fixed.run(None, {"x": x})[0], ref, rtol=0, atol=1e-6)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        fixed.run(None, {"x": x[:1]})  # the batch is now fixed at 4
