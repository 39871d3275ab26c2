"""Errors of the TFLite lowering: unsupported ops, dynamic dims, int8 without Q/DQ; determinism; no partial output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import helper
from tflite_helpers import make_model, quantize_qdq

from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.backends.tflite.context import ConvertOptions
from edgeopt.backends.tflite.converter import convert
from edgeopt.backends.tflite.errors import UnsupportedOpError
from edgeopt.backends.tflite.lower_pass import ToTflite
from edgeopt.backends.tflite.op_table import SUPPORTED_OPS
from edgeopt.errors import ConfigError
from edgeopt.passes.base import PassContext

pytest.importorskip("ai_edge_litert")

N = helper.make_node


def unsupported_model() -> object:
    nodes = [N("Relu", ["x"], ["r"], name="act"),
             N("Einsum", ["r", "r"], ["e"], name="my_einsum", equation="ij,ij->ij"),
             N("Det", ["e"], ["y"], name="the_det")]
    return make_model(nodes, {"x": (4, 4)}, ["y"])


def test_unsupported_op_names_op_node_and_supported_list() -> None:
    with pytest.raises(UnsupportedOpError) as err:
        convert(unsupported_model(), ConvertOptions())
    msg = str(err.value)
    assert "Einsum (node 'my_einsum')" in msg and "Det (node 'the_det')" in msg
    assert "supported ONNX ops: Conv, Gemm, MatMul" in msg
    assert isinstance(err.value, ConfigError)
    assert ("Einsum", "my_einsum") in err.value.ops


def test_custom_domain_op_is_reported_first() -> None:
    node = N("Fancy", ["x"], ["y"], name="fancy1", domain="com.example")
    graph = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", 1, [1, 4])],
                              [helper.make_tensor_value_info("y", 1, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    with pytest.raises(UnsupportedOpError, match="com.example.Fancy \\(node 'fancy1'\\)"):
        convert(model, ConvertOptions())


def test_unsupported_variant_names_the_node() -> None:
    model = make_model([N("Pad", ["x", "p"], ["y"], name="edge_pad", mode="edge")], {"x": (1, 2, 4, 4)}, ["y"],
                       {"p": np.asarray([0, 0, 1, 1, 0, 0, 1, 1], np.int64)})
    with pytest.raises(ConfigError, match="Pad node 'edge_pad': mode 'edge'"):
        convert(model, ConvertOptions())


def test_dynamic_dim_names_input_and_fix() -> None:
    model = make_model([N("Relu", ["x"], ["y"])], {"x": ("batch", 3, "height", 8)}, ["y"])
    with pytest.raises(ConfigError) as err:
        convert(model, ConvertOptions())
    msg = str(err.value)
    assert "input 'x' has dynamic dimension 2 (height)" in msg
    assert "--input-shape x:1,3,<height>,8" in msg and "--input-shape NAME:1,3,224,224" in msg
    data = convert(model, ConvertOptions(input_shapes=(("x", (1, 3, 5, 8)),)))  # the fix works
    assert data[4:8] == b"TFL3"


def test_int8_without_qdq_explains() -> None:
    model = make_model([N("Relu", ["x"], ["y"])], {"x": (1, 4)}, ["y"])
    with pytest.raises(ConfigError, match="precision int8 needs a quantized .* quantize pass"):
        convert(model, ConvertOptions(precision="int8"))


def test_qdq_model_needs_int8_precision(tmp_path: Path) -> None:
    model = make_model([N("MatMul", ["x", "w"], ["y"])], {"x": (1, 4)}, ["y"],
                       {"w": np.ones((4, 3), np.float32)})
    qdq = quantize_qdq(model, tmp_path)
    with pytest.raises(ConfigError, match="use precision int8"):
        convert(qdq, ConvertOptions(precision="fp32"))


def test_conversion_is_deterministic(tmp_path: Path) -> None:
    nodes = [N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), N("Relu", ["c"], ["r"]), N("Flatten", ["r"], ["f"]),
             N("Gemm", ["f", "fw"], ["y"], transB=1)]
    rng = np.random.default_rng(0)
    model = make_model(nodes, {"x": (1, 2, 4, 4)}, ["y"],
                       {"w": rng.standard_normal((4, 2, 3, 3)).astype(np.float32),
                        "fw": rng.standard_normal((3, 64)).astype(np.float32)})
    for precision in ("fp32", "fp16", "dynamic_int8"):
        opts = ConvertOptions(precision=precision)
        assert convert(model, opts) == convert(model, opts)
    qdq = quantize_qdq(model, tmp_path)
    assert convert(qdq, ConvertOptions(precision="int8")) == convert(qdq, ConvertOptions(precision="int8"))


def test_pass_writes_nothing_on_error(tmp_path: Path) -> None:
    src = tmp_path / "bad.onnx"
    src.write_bytes(unsupported_model().SerializeToString())
    out = tmp_path / "out.tflite"
    with pytest.raises(UnsupportedOpError):
        ToTflite().run(OnnxModel.from_file(src), PassContext(work_dir=tmp_path), out)
    assert not out.exists()


def test_pass_config_typo_is_an_error() -> None:
    with pytest.raises(ConfigError, match="precison"):
        ToTflite({"precison": "fp16"})
    with pytest.raises(ConfigError, match="precision"):
        ToTflite({"precision": "int4"})


def test_inspect_reports_coverage(tmp_path: Path) -> None:
    from edgeopt.backends.tflite.backend import TfliteBackend

    src = tmp_path / "bad.onnx"
    src.write_bytes(unsupported_model().SerializeToString())
    info = TfliteBackend().inspect(OnnxModel.from_file(src))
    assert info["convertible"] is False
    assert info["unsupported_ops"] == {"Det": ["the_det"], "Einsum": ["my_einsum"]}
    assert info["supported_ops"] == {"Relu": 1}
    assert info["nodes_covered"] == "1/3"


def test_table_documents_every_op() -> None:
    for op, support in SUPPORTED_OPS.items():
        assert callable(support.lower) and support.tflite, op


def test_backend_check_lists_dynamic_dims_before_any_work() -> None:
    from edgeopt.artifacts.base import TensorSpec
    from edgeopt.backends.tflite.backend import TfliteBackend

    specs = [TensorSpec("ids", ("batch", "seq"), "int64"), TensorSpec("x", ("batch", 3, 8, 8))]
    (problem,) = TfliteBackend().check(specs)
    assert "input 'ids' has dynamic dimension 1 (seq)" in problem and "--input-shape ids:1,<seq>" in problem
