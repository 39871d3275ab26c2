"""ort_optimize: ONNX Runtime's offline optimizations saved into the artifact, which loads and computes the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.errors import ConfigError
from edgeopt.passes.base import PassContext
from edgeopt.passes.onnx.ort_optimize import OrtOptimize


def _conv_bn_model() -> onnx.ModelProto:
    """x[b,3,8,8] -> Conv -> BatchNormalization -> Relu -> y: the BN folds into the Conv."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((6, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "b"),
        numpy_helper.from_array((0.5 + rng.random(6)).astype(np.float32), "scale"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "shift"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "mean"),
        numpy_helper.from_array((0.5 + rng.random(6)).astype(np.float32), "var"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 6, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture
def conv_bn(tmp_path: Path) -> OnnxModel:
    path = tmp_path / "conv_bn.onnx"
    path.write_bytes(_conv_bn_model().SerializeToString())
    return OnnxModel.from_file(path)


def _plain_session(path: Path) -> ort.InferenceSession:
    """A session that applies no optimizations of its own, so it runs exactly what was saved."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("level", ["basic", "extended"])
def test_saved_graph_is_optimized_loads_and_matches(conv_bn: OnnxModel, tmp_path: Path, level: str) -> None:
    out = OrtOptimize({"level": level}).run(conv_bn, PassContext(work_dir=tmp_path), tmp_path / "opt.onnx")
    ops = out.op_histogram()
    assert "BatchNormalization" not in ops  # folded into the convolution
    assert sum(ops.values()) < sum(conv_bn.op_histogram().values())
    assert out.proto.producer_name == "edgeopt"
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    ref = _plain_session(conv_bn.path).run(None, {"x": x})[0]
    got = _plain_session(out.path).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_deterministic_and_input_untouched(conv_bn: OnnxModel, tmp_path: Path) -> None:
    before = conv_bn.path.read_bytes()
    ctx = PassContext(work_dir=tmp_path)
    a = OrtOptimize().run(conv_bn, ctx, tmp_path / "a.onnx")
    b = OrtOptimize().run(conv_bn, ctx, tmp_path / "b.onnx")
    assert a.sha256 == b.sha256
    assert conv_bn.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.onnx", "conv_bn.onnx"]  # scratch removed


def test_mnist_outputs_unchanged(mnist_onnx: Path, tmp_path: Path) -> None:
    model = OnnxModel.from_file(mnist_onnx)
    out = OrtOptimize().run(model, PassContext(work_dir=tmp_path), tmp_path / "mnist.onnx")
    x = np.random.default_rng(3).standard_normal((1, 1, 28, 28)).astype(np.float32)
    ref = _plain_session(mnist_onnx).run(None, {"input.1": x})[0]
    got = _plain_session(out.path).run(None, {"input.1": x})[0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_level_is_validated_and_target_declared() -> None:
    with pytest.raises(ConfigError, match="level"):
        OrtOptimize({"level": "max"})
    assert OrtOptimize.targets == ("ort-cpu",)
