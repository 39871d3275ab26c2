"""The qdq_tensorrt pass: rule-clean output, symmetric INT8 everywhere, and numbers that hold under ONNX Runtime
(a stand-in for TensorRT's INT8 arithmetic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from edgeopt.artifacts.base import TensorSpec
from edgeopt.backends.tensorrt.placement import check_placement
from edgeopt.data import load_data
from edgeopt.passes.base import PassContext
from edgeopt.passes.onnx.qdq_tensorrt import QdqTensorrtConfig, quantize_for_tensorrt, strip_qdq
from edgeopt.passes.registry import REGISTRY
from edgeopt.quant.record import read_record


def _quantize_noted(path: Path, calib: np.ndarray, tmp_path: Path, name: str = "x",
                    **cfg: object) -> tuple[onnx.ModelProto, list[str]]:
    """The TensorRT-ready model and the pass's notes; without an accuracy budget unless `cfg` sets one."""
    shape = ("batch", *calib.shape[1:])
    data = load_data({name: calib}, [TensorSpec(name, shape)])
    cfg.setdefault("max_accuracy_drop", None)
    return quantize_for_tensorrt(onnx.load(str(path)), PassContext(work_dir=tmp_path, calibration=data),
                                 QdqTensorrtConfig(**cfg))  # type: ignore[arg-type]


def _quantize(path: Path, calib: np.ndarray, tmp_path: Path, name: str = "x", **cfg: object) -> onnx.ModelProto:
    return _quantize_noted(path, calib, tmp_path, name, **cfg)[0]


def _run(model: onnx.ModelProto | Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def test_registered_with_its_contract() -> None:
    cls = REGISTRY.get("qdq_tensorrt")
    assert cls.needs_calibration and cls.input_kind.value == "onnx" and cls.output_kind.value == "onnx"


@pytest.fixture(scope="module")
def residual_trt(residual_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    calib = np.random.default_rng(1).standard_normal((32, 3, 8, 8)).astype(np.float32)
    return _quantize(residual_onnx, calib, tmp_path_factory.mktemp("qdq_trt"))


def test_zero_violations_and_structure(residual_trt: onnx.ModelProto) -> None:
    assert check_placement(residual_trt) == []
    inits = {i.name: numpy_helper.to_array(i) for i in residual_trt.graph.initializer}
    qdq = [n for n in residual_trt.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    for node in qdq:
        zp = inits[node.input[2]]
        assert zp.dtype == np.int8 and not zp.any()
    dq_outputs = {n.output[0]: n for n in qdq if n.op_type == "DequantizeLinear"}
    nodes = {n.name: n for n in residual_trt.graph.node}
    conv1 = nodes["conv1"]
    assert conv1.input[0] in dq_outputs and conv1.input[1] in dq_outputs and conv1.input[2] == "b1"
    weight_dq = dq_outputs[conv1.input[1]]
    assert inits[weight_dq.input[1]].shape == (8,)  # per channel
    add = nodes["residual_add"]
    assert add.input[0] not in dq_outputs and add.input[1] in dq_outputs
    assert sum(n.op_type == "QuantizeLinear" for n in residual_trt.graph.node) == 3  # x, r1, f


def test_close_to_float(residual_onnx: Path, residual_trt: onnx.ModelProto) -> None:
    x = np.random.default_rng(7).standard_normal((16, 3, 8, 8)).astype(np.float32)
    ref, got = _run(residual_onnx, {"x": x}), _run(residual_trt, {"x": x})
    cos = float(np.sum(ref * got) / np.linalg.norm(ref) / np.linalg.norm(got))
    assert cos > 0.995


@pytest.mark.parametrize("fixture", ["ort_default_qdq", "ort_uint8_qdq"])
def test_asymmetric_qdq_is_reemitted_symmetric(fixture: str, request: pytest.FixtureRequest,
                                                residual_onnx: Path, tmp_path: Path) -> None:
    qdq = request.getfixturevalue(fixture)
    stripped, ranges = strip_qdq(onnx.load(str(qdq)))
    assert ranges and not any(n.op_type.endswith("QuantizeLinear") for n in stripped.graph.node)
    calib = np.random.default_rng(1).standard_normal((32, 3, 8, 8)).astype(np.float32)
    out = _quantize(qdq, calib, tmp_path)
    assert check_placement(out) == []
    x = np.random.default_rng(3).standard_normal((16, 3, 8, 8)).astype(np.float32)
    ref, got = _run(residual_onnx, {"x": x}), _run(out, {"x": x})
    assert np.mean(ref.argmax(1) == got.argmax(1)) >= 0.9
    assert float(np.sum(ref * got) / np.linalg.norm(ref) / np.linalg.norm(got)) > 0.99


def test_trained_digits_agree_with_float_on_top1(digits_onnx: tuple, tmp_path: Path) -> None:
    path, calib, x_test, y_test = digits_onnx
    out = _quantize(path, np.load(calib)["x"], tmp_path, name="input")
    assert check_placement(out) == []
    ref, got = _run(path, {"input": x_test}).argmax(1), _run(out, {"input": x_test}).argmax(1)
    agreement = float(np.mean(ref == got))
    assert agreement >= 0.98, agreement
    assert float(np.mean(got == y_test)) >= float(np.mean(ref == y_test)) - 0.02
    types = {i.data_type for i in out.graph.initializer if i.name.endswith("_quantized")}
    assert types == {TensorProto.INT8}


def test_bias_correction_keeps_the_rules_and_moves_only_float_biases(digits_onnx: tuple, tmp_path: Path) -> None:
    path, calib, x_test, _ = digits_onnx
    x = np.load(calib)["x"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = _quantize(path, x, tmp_path / "a", name="input")
    corrected = _quantize(path, x, tmp_path / "b", name="input", bias_correction=True, bias_correction_samples=32)
    assert check_placement(corrected) == []
    record = read_record(corrected)["bias_correction"]
    assert record["samples"] == 32 and record["corrected"] >= 2
    before = {i.name: numpy_helper.to_array(i) for i in plain.graph.initializer}
    changed = {i.name for i in corrected.graph.initializer if not np.array_equal(numpy_helper.to_array(i),
                                                                                  before[i.name])}
    biases = {n.input[2] for n in corrected.graph.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 2}
    assert changed and changed <= biases
    ref = _run(path, {"input": x_test}).argmax(1)
    assert float(np.mean(_run(corrected, {"input": x_test}).argmax(1) == ref)) >= 0.98


def test_excluded_nodes_stay_float_and_are_declared(residual_onnx: Path, tmp_path: Path) -> None:
    """exclude_nodes: conv1 and fc keep float inputs and weights (FP16 in the engine); the record declares them, so
    the checker passes this model, and names them when told nothing is float on purpose."""
    calib = np.random.default_rng(1).standard_normal((32, 3, 8, 8)).astype(np.float32)
    out = _quantize(residual_onnx, calib, tmp_path, exclude_nodes=["fc", "conv1"])
    nodes = {n.name: n for n in out.graph.node}
    dq_outputs = {n.output[0] for n in out.graph.node if n.op_type == "DequantizeLinear"}
    for name in ("conv1", "fc"):
        assert not set(nodes[name].input) & dq_outputs
    assert nodes["conv2"].input[0] in dq_outputs and nodes["conv2"].input[1] in dq_outputs
    assert read_record(out)["float_nodes"] == ["conv1", "fc"]
    assert check_placement(out) == []
    flagged = check_placement(out, float_nodes=frozenset())
    assert {(v.node, v.rule) for v in flagged} == {("conv1", "linear-inputs"), ("fc", "linear-inputs")}
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 8)).astype(np.float32)
    ref, got = _run(residual_onnx, {"x": x}), _run(out, {"x": x})
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()


def test_a_residual_add_behind_a_float_conv_stays_float(residual_onnx: Path, tmp_path: Path) -> None:
    """conv2 kept float: no INT8 Conv+Add fusion exists, so the Add reads both inputs float and relu1's output, read
    only by conv2 and the Add, has no Q/DQ at all. Rule-clean as declared; both named when nothing is declared."""
    calib = np.random.default_rng(1).standard_normal((32, 3, 8, 8)).astype(np.float32)
    out, notes = _quantize_noted(residual_onnx, calib, tmp_path, exclude_nodes=["conv2"])
    quantized = [n.input[0] for n in out.graph.node if n.op_type == "QuantizeLinear"
                 and n.input[0] not in {i.name for i in out.graph.initializer}]
    assert sorted(quantized) == ["f", "x"]
    dq_outputs = {n.output[0] for n in out.graph.node if n.op_type == "DequantizeLinear"}
    add = next(n for n in out.graph.node if n.name == "residual_add")
    assert not set(add.input) & dq_outputs
    assert check_placement(out) == []
    flagged = check_placement(out, float_nodes=frozenset())
    assert {(v.node, v.rule) for v in flagged} == {("conv2", "linear-inputs"), ("residual_add", "residual-add")}
    assert read_record(out)["residual_adds"] == 0
    assert any("0 residual Adds keep their Conv branch float" in n for n in notes)


def _shared_identity_cnn(path: Path) -> Path:
    """Two branches from the input: conv2 (the residual branch) and conv1, whose output feeds the residual Add and
    a second head conv3."""
    from onnx import helper

    rng = np.random.default_rng(3)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "c1"], ["a"], name="residual_add"),
             helper.make_node("Conv", ["c1", "w3", "b3"], ["c3"], name="conv3")]
    graph = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                               ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 8, 8, 8]),
                               helper.make_tensor_value_info("c3", TensorProto.FLOAT, ["batch", 4, 8, 8])],
                              [init("w1", 8, 3, 3, 3), init("b1", 8), init("w2", 8, 3, 3, 3), init("b2", 8),
                               init("w3", 4, 8, 1, 1), init("b3", 4)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_float_branch_add_keeps_the_qdq_an_int8_layer_shares(tmp_path: Path) -> None:
    """conv2 kept float, but conv1's output is quantized for conv3 anyway: the Add reads it through that same Q/DQ,
    so conv1 writes INT8 alone in the engine; one Q on it. Rule-clean: conv1's output, read by two nodes through one
    Q/DQ, is no Conv branch TensorRT could fuse into the Add."""
    path = _shared_identity_cnn(tmp_path / "shared.onnx")
    calib = np.random.default_rng(1).standard_normal((32, 3, 8, 8)).astype(np.float32)
    out = _quantize(path, calib, tmp_path, exclude_nodes=["conv2"])
    dq_outputs = {n.output[0] for n in out.graph.node if n.op_type == "DequantizeLinear"}
    nodes = {n.name: n for n in out.graph.node}
    assert nodes["residual_add"].input[1] in dq_outputs and nodes["residual_add"].input[0] not in dq_outputs
    assert nodes["conv3"].input[0] in dq_outputs and not set(nodes["conv2"].input) & dq_outputs
    assert [n.input[0] for n in out.graph.node if n.op_type == "QuantizeLinear"
            and n.input[0] in ("c1", "x")] == ["x", "c1"]
    assert check_placement(out) == [] and read_record(out)["residual_adds"] == 0  # no INT8 Conv+Add fusion
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 8)).astype(np.float32)
    ref, got = _run(path, {"x": x}), _run(out, {"x": x})
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()


@pytest.mark.parametrize("net", ["cifar_resnet8", "mobilenet_v2"])
def test_inverted_residuals_and_float_choices_stay_rule_clean(net: str, tmp_path: Path) -> None:
    """MobileNetV2 adds the block input first and the project Conv second, and the block input is also the next
    expand Conv's input: all INT8, and with the fallback's kind of choices (each project Conv float, which leaves its
    Add without an INT8 Conv branch; a few random sets), every build is emitted rule-clean (the pass raises
    otherwise) and keeps the Adds' shared Q/DQ."""
    import torch

    from edgeopt.models.mobilenet_v2 import mobilenet_v2
    from edgeopt.models.resnet import cifar_resnet
    from edgeopt.passes.onnx.qdq_tensorrt import linear_nodes
    from edgeopt.quant.emit import prepare_model
    from edgeopt.quant.graph import name_nodes

    model = cifar_resnet(depth=8, width=8) if net == "cifar_resnet8" else mobilenet_v2(num_classes=10,
                                                                                     width_mult=0.35)
    path = tmp_path / f"{net}.onnx"
    torch.onnx.export(model.eval(), (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    prepared = prepare_model(onnx.load(str(path)), tmp_path)
    name_nodes(prepared)
    producers = {o: n for n in prepared.graph.node for o in n.output}
    adds = [n for n in prepared.graph.node if n.op_type == "Add"]
    branch_convs = sorted({producers[i].name for a in adds for i in a.input if producers.get(i) is not None
                           and producers[i].op_type == "Conv"})
    assert len(adds) >= 3 and branch_convs
    rng = np.random.default_rng(1)
    convs = linear_nodes(prepared)
    choices = [[], *([c] for c in branch_convs[:6]),
               *(sorted(rng.choice(convs, size=k, replace=False).tolist()) for k in (3, 8))]
    calib = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    for kept in choices:
        out = _quantize(path, calib, tmp_path, exclude_nodes=kept)
        assert check_placement(out) == [], kept
        dq_outputs = {n.output[0] for n in out.graph.node if n.op_type == "DequantizeLinear"}
        quantized_adds = sum(any(i in dq_outputs for i in n.input) for n in out.graph.node if n.op_type == "Add")
        assert quantized_adds >= len(adds) - len(kept), kept


def test_excluding_an_unknown_node_names_the_choices(residual_onnx: Path, tmp_path: Path) -> None:
    from edgeopt.errors import ConfigError

    calib = np.random.default_rng(1).standard_normal((8, 3, 8, 8)).astype(np.float32)
    with pytest.raises(ConfigError) as info:
        _quantize(residual_onnx, calib, tmp_path, exclude_nodes=["relu1"])
    assert "relu1" in str(info.value) and "conv1, conv2, fc" in str(info.value)


def test_accuracy_fallback_keeps_the_most_sensitive_node_float(residual_onnx: Path, tmp_path: Path) -> None:
    """With a 1-point budget on top-1 agreement over 32 calibration samples, the all-INT8 build flips one sample
    (3.1 points); the fallback keeps the node with the lowest SQNR float, declares it, and stays rule-clean."""
    calib = np.random.default_rng(1).standard_normal((32, 3, 8, 8)).astype(np.float32)
    out, notes = _quantize_noted(residual_onnx, calib, tmp_path, exclude_nodes=["fc", "conv1"], max_accuracy_drop=1.0)
    record = read_record(out)
    steps = record["steps"]
    assert steps[0]["float_nodes"] == ["conv1", "fc"] and steps[0]["score"]["drop_points"] > 1.0
    assert record["budget_met"] and record["score"]["drop_points"] <= 1.0
    added = sorted(set(record["float_nodes"]) - {"conv1", "fc"})
    assert added and record["chosen"] == steps[-1]["label"]
    assert check_placement(out) == []  # the record declares the fallback's nodes too
    dq_outputs = {n.output[0] for n in out.graph.node if n.op_type == "DequantizeLinear"}
    node = next(n for n in out.graph.node if n.name == added[0])
    assert not set(node.input) & dq_outputs
    assert any("accuracy fallback: kept 1 most sensitive" in n for n in notes)
    assert any("under ONNX Runtime" in n and "budget 1" in n for n in notes)


def test_accuracy_budget_out_of_reach_keeps_the_best_build_and_says_so(residual_onnx: Path, tmp_path: Path) -> None:
    """A zero budget on cosine distance cannot be met while any node stays INT8: every step up to the cap of 2 float
    nodes is tried, the best is kept."""
    calib = np.random.default_rng(1).standard_normal((32, 3, 8, 8)).astype(np.float32)
    out, notes = _quantize_noted(residual_onnx, calib, tmp_path, max_accuracy_drop=0.0, metric="cosine",
                                 fallback_steps=2, max_float_fraction=0.67)
    record = read_record(out)
    assert record["budget_met"] is False
    assert [len(s["float_nodes"]) for s in record["steps"]] == [0, 1, 2]  # all INT8, 1 float, 2 float
    best = min(s["score"]["drop_points"] for s in record["steps"])
    assert record["score"]["drop_points"] == best
    assert check_placement(out) == []
    assert any("could not meet the 0-point accuracy budget" in n for n in notes)
