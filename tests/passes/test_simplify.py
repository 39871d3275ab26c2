"""simplify: constant subgraphs fold, dead nodes go, numbers stay within 1e-5, the input is never modified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.errors import ConfigError
from edgeopt.fileio import sha256_file
from edgeopt.passes.base import PassContext
from edgeopt.passes.onnx.simplify import Simplify


def _foldable_model() -> onnx.ModelProto:
    """y = Relu(x * ((a + b) * c)) + 0 * d: Add/Mul on constants only, an Identity, and a dead branch."""
    rng = np.random.default_rng(0)
    consts = {n: rng.standard_normal(4).astype(np.float32) for n in ("a", "b", "c")}
    nodes = [
        helper.make_node("Constant", [], ["a"], value=numpy_helper.from_array(consts["a"], "a")),
        helper.make_node("Add", ["a", "b"], ["ab"], name="fold_add"),
        helper.make_node("Mul", ["ab", "c"], ["abc"], name="fold_mul"),
        helper.make_node("Identity", ["abc"], ["abc_id"], name="identity"),
        helper.make_node("Mul", ["x", "abc_id"], ["xm"], name="mul"),
        helper.make_node("Relu", ["xm"], ["y"], name="relu"),
        helper.make_node("Neg", ["x"], ["dead"], name="dead_neg"),  # nothing reads it
    ]
    graph = helper.make_graph(
        nodes,
        "foldable",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(consts["b"], "b"), numpy_helper.from_array(consts["c"], "c")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture
def foldable(tmp_path: Path) -> OnnxModel:
    path = tmp_path / "foldable.onnx"
    path.write_bytes(_foldable_model().SerializeToString())
    return OnnxModel.from_file(path)


def test_folds_constant_subgraph(foldable: OnnxModel, tmp_path: Path, ort_run) -> None:
    assert foldable.op_histogram() == {"Add": 1, "Constant": 1, "Identity": 1, "Mul": 2, "Neg": 1, "Relu": 1}
    out = Simplify().run(foldable, PassContext(work_dir=tmp_path), tmp_path / "out.onnx")
    assert out.op_histogram() == {"Mul": 1, "Relu": 1}
    assert len(out.proto.graph.initializer) == 1  # (a + b) * c became one constant
    x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    (ref,) = ort_run(foldable.path, {"x": x})
    (got,) = ort_run(out.path, {"x": x})
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_never_modifies_its_input(foldable: OnnxModel, tmp_path: Path) -> None:
    digest = sha256_file(foldable.path)
    proto_before = foldable.proto.SerializeToString()
    Simplify().run(foldable, PassContext(work_dir=tmp_path), tmp_path / "out.onnx")
    assert sha256_file(foldable.path) == digest
    assert foldable.proto.SerializeToString() == proto_before


def test_deterministic_bytes(foldable: OnnxModel, tmp_path: Path) -> None:
    ctx = PassContext(work_dir=tmp_path)
    a = Simplify().run(foldable, ctx, tmp_path / "a.onnx")
    b = Simplify().run(foldable, ctx, tmp_path / "b.onnx")
    assert a.sha256 == b.sha256


def test_disabled_simplifiers_keep_the_graph(foldable: OnnxModel, tmp_path: Path) -> None:
    cfg = {"onnxslim": False, "onnxsim": False}
    out = Simplify(cfg).run(foldable, PassContext(work_dir=tmp_path), tmp_path / "out.onnx")
    assert out.op_histogram() == foldable.op_histogram()


def test_mnist_numbers(mnist_onnx: Path, tmp_path: Path, ort_run) -> None:
    model = OnnxModel.from_file(mnist_onnx)
    out = Simplify().run(model, PassContext(work_dir=tmp_path), tmp_path / "mnist.onnx")
    assert out.op_histogram()["Conv"] == 4 and out.op_histogram()["Gemm"] == 2
    x = np.random.default_rng(2).standard_normal((1, 1, 28, 28)).astype(np.float32)
    (ref,) = ort_run(mnist_onnx, {"input.1": x})
    (got,) = ort_run(out.path, {"input.1": x})
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_config_typo_names_the_field() -> None:
    with pytest.raises(ConfigError, match="onnxslm"):
        Simplify({"onnxslm": True})
