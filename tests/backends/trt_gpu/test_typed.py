"""Strongly typed TensorRT builds (target trt-gpu-typed; TensorRT 11, TensorRT 10 with --stronglyTyped): the FP16-typed
ONNX the `fp16_typed` pass writes runs under ONNX Runtime and agrees with the FP32-typed build, Q/DQ scales become
FP16 at opset 19 without breaking a placement rule, and the backend builds from the types (no precision flags)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.backends.tensorrt.backend import TensorrtBackend
from edgeopt.backends.tensorrt.placement import check_placement
from edgeopt.cli import main
from edgeopt.errors import ConfigError
from edgeopt.passes.onnx.fp16_typed import FP16_QDQ_OPSET, is_fp16_typed, to_fp16_typed
from tests.backends.trt_gpu.test_qdq_tensorrt import _quantize, _run

F16 = TensorProto.FLOAT16


def _scale_types(model: onnx.ModelProto) -> set[int]:
    inits = {i.name: i.data_type for i in model.graph.initializer}
    return {inits[n.input[1]] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}


def _value_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    return {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.output]}


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def test_trained_digits_typed_agree_with_their_fp32_typed_builds(digits_onnx: tuple, tmp_path: Path) -> None:
    path, calib, x_test, y_test = digits_onnx
    float_model = onnx.load(str(path))
    int8 = _quantize(path, np.load(calib)["x"], tmp_path, name="input")
    for before in (float_model, int8):
        typed = to_fp16_typed(before)
        onnx.checker.check_model(typed)
        assert is_fp16_typed(typed) and not is_fp16_typed(before)
        # Callers feed and read FP32 as before; inside, every float initializer is FP16.
        assert [i.type.tensor_type.elem_type for i in [*typed.graph.input, *typed.graph.output]] == [1, 1]
        assert {i.data_type for i in typed.graph.initializer} <= {F16, TensorProto.INT8, TensorProto.INT64}
        ref, got = _run(before, {"input": x_test}), _run(typed, {"input": x_test})
        assert got.dtype == np.float32
        agreement = float(np.mean(ref.argmax(1) == got.argmax(1)))
        assert agreement >= 0.99, agreement
        assert float(np.mean(got.argmax(1) == y_test)) >= float(np.mean(ref.argmax(1) == y_test)) - 0.01
    typed = to_fp16_typed(int8)
    assert _opset(int8) < FP16_QDQ_OPSET <= _opset(typed) and _scale_types(typed) == {F16}
    assert check_placement(typed) == []  # Casts at the edges and FP16 scales break no placement rule
    weights = {i.data_type for i in typed.graph.initializer if i.name.endswith("_quantized")}
    assert weights == {TensorProto.INT8}


def test_keep_fp32_leaves_the_named_node_fp32(residual_onnx: Path) -> None:
    model = onnx.load(str(residual_onnx))
    typed = to_fp16_typed(model, ["fc"])
    inits = {i.name: i.data_type for i in typed.graph.initializer}
    assert inits["wf"] == TensorProto.FLOAT and inits["w1"] == F16
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    assert np.allclose(_run(typed, {"x": x}), _run(model, {"x": x}), atol=2e-2)
    with pytest.raises(ConfigError, match="keep_fp32 names nodes the model does not have: nope"):
        to_fp16_typed(model, ["nope"])


def test_strongly_typed_plan_reads_the_types(residual_onnx: Path, tmp_path: Path) -> None:
    fp32 = OnnxModel.from_file(residual_onnx)
    onnx.save(to_fp16_typed(fp32.proto), str(tmp_path / "typed.onnx"))
    typed = OnnxModel.from_file(tmp_path / "typed.onnx")
    backend = TensorrtBackend({"strongly_typed": True})
    plan = backend.plan(typed)
    assert (plan.int8, plan.fp16, plan.precision) == (False, True, "fp16 (strongly typed)")
    with pytest.raises(ConfigError, match="FP32-typed"):
        backend.plan(fp32)  # would build FP32: said, not silently built slower
    with pytest.raises(ConfigError, match="precision int8 needs a model with Q/DQ"):
        TensorrtBackend({"strongly_typed": True, "precision": "int8"}).plan(typed)
    assert TensorrtBackend().plan(fp32).precision == "fp16"  # the weakly typed build is unchanged


def test_strongly_typed_builds_run_on_tensorrt_10_and_11() -> None:
    from edgeopt.backends.tensorrt.trt_import import unsupported_version

    for version in ("10.3.0", "10.13.3.9", "11.4.0.106"):
        assert unsupported_version(version, strongly_typed=True) is None
    for version in ("12.0.0", "8.6.1"):
        why = unsupported_version(version, strongly_typed=True)
        assert why is not None and version in why
    weak = unsupported_version("11.4.0.106")
    assert weak is not None and "--target trt-gpu-typed" in weak


@pytest.mark.skipif(TensorrtBackend.availability() is None, reason="TensorRT and a GPU are present")
def test_compile_typed_target_writes_typed_onnx_and_strongly_typed_command(
    residual_onnx: Path, residual_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code = main(["compile", str(residual_onnx), "--target", "trt-gpu-typed", "--out", str(out), "--quiet", "--iters",
                 "5", "--cache-dir", str(tmp_path / "cache"), "--quantize", "static", "--calibration",
                 str(residual_npz)])
    assert code == 0
    rows = {v["name"]: v for v in json.loads((out / "report.json").read_text())["variants"]}
    for name, precision in (("trt-gpu-typed/int8", "int8+fp16"), ("trt-gpu-typed/fp16", "fp16")):
        row = rows[name]
        assert row["status"].startswith("engine not built: ") and row["engine"] is None
        assert row["trt_precision"] == f"{precision} (strongly typed)"
        args = shlex.split(row["build_command"])
        assert "--stronglyTyped" in args and "--fp16" not in args and "--int8" not in args
        model = onnx.load(str(out / row["artifact"]))
        assert is_fp16_typed(model) and check_placement(model) == []
        assert any("TensorRT 10 or 11" in n for n in row["notes"])
    int8 = onnx.load(str(out / rows["trt-gpu-typed/int8"]["artifact"]))
    assert _scale_types(int8) == {F16} and _opset(int8) >= FP16_QDQ_OPSET
    # The pass order: calibrated and placed on the FP32 graph, typed last.
    assert [p["pass"] for p in rows["trt-gpu-typed/int8"]["passes"]][-2:] == ["qdq_tensorrt", "fp16_typed"]


def _scaled_model(tmp_path: Path) -> Path:
    """y = ((300 x)^2 * 0.001) * 0.01: the square overflows FP16 (65504) for |x| > 0.85; every constant fits FP16."""
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k300"], ["u"], name="up"), helper.make_node("Mul", ["u", "u"], ["v"],
                                                                                     name="square"),
         helper.make_node("Mul", ["v", "k1e-3"], ["w"], name="down"), helper.make_node("Mul", ["w", "k1e-2"], ["y"],
                                                                                      name="down2")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("k300", 300), ("k1e-3", 1e-3),
                                                                          ("k1e-2", 1e-2))])
    path = tmp_path / "scaled.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_nodes_that_overflow_fp16_on_the_data_stay_fp32(tmp_path: Path) -> None:
    from edgeopt.artifacts.base import TensorSpec
    from edgeopt.data import load_data
    from edgeopt.passes.base import PassContext
    from edgeopt.passes.onnx.fp16_typed import Fp16Typed

    path = _scaled_model(tmp_path)
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    # Unchecked, the square would be FP16 and overflow in the engine. (ONNX Runtime's CPU provider computes FP16 Mul
    # in FP32 behind inserted Casts, so running the model here would not show it: the types do.)
    assert _value_types(to_fp16_typed(onnx.load(str(path))))["v"] == F16
    ctx = PassContext(work_dir=tmp_path, calibration=load_data({"x": x}, [TensorSpec("x", ("batch", 4))]))
    out = Fp16Typed().run(OnnxModel.from_file(path), ctx, tmp_path / "typed.onnx")
    types, nodes = _value_types(out.proto), {n.name: n for n in out.proto.graph.node}
    square = nodes["square"].output[0]  # goes straight on to 'down' in FP32, not through an FP16 Cast and back
    assert types[square] == TensorProto.FLOAT and nodes["down"].input[0] == square
    assert types["u"] == F16 and types[nodes["down2"].input[0]] == F16  # only what overflows, and what reads it
    got = _run(out.proto, {"x": x})
    assert np.allclose(got, 0.9 * x**2, rtol=2e-3, atol=1e-3)
    (note,) = ctx.shared["notes"]
    peak = float((300 * np.abs(x).max()) ** 2)
    assert f"kept FP32: down ({peak:.3g}), square ({peak:.3g})" in note, note
    # Without data nothing is measured, and the note says so and what to pass.
    ctx = PassContext(work_dir=tmp_path)
    Fp16Typed().run(OnnxModel.from_file(path), ctx, tmp_path / "typed2.onnx")
    assert "no value ranges were measured" in ctx.shared["notes"][0] and "--calibration" in ctx.shared["notes"][0]


def test_ort_runs_fp16_typed_qdq_without_its_fp16_bias_quantization(residual_onnx: Path, tmp_path: Path) -> None:
    """ORT's WeightBiasQuantization divides a float bias by s_x * s_w in FP16 here: a bias of 40 over a scale
    product near 1e-4 overflows, and the Conv's output is garbage. edgeopt's ORT runner turns it off for such models."""
    from onnx import numpy_helper

    from edgeopt.backends.base import run_batched
    from edgeopt.backends.ort.backend import OrtBackend

    model = onnx.load(str(residual_onnx))
    for init in model.graph.initializer:
        if init.name == "b1":
            init.CopyFrom(numpy_helper.from_array(np.full(8, 40.0, np.float32), "b1"))
    big_bias = tmp_path / "big_bias.onnx"
    onnx.save(model, str(big_bias))
    calib = np.random.default_rng(1).standard_normal((32, 3, 8, 8)).astype(np.float32)
    int8 = _quantize(big_bias, calib, tmp_path)
    typed_path = tmp_path / "typed.onnx"
    onnx.save(to_fp16_typed(int8), str(typed_path))
    x = calib[:8]
    ref = _run(int8, {"x": x})
    raw = _run(onnx.load(str(typed_path)), {"x": x})
    assert not np.allclose(raw, ref, atol=0.1 * np.abs(ref).max())  # what ORT's default optimizers do to it
    got = run_batched(OrtBackend().load(OnnxModel.from_file(typed_path)), {"x": x})[0]
    assert np.allclose(got, ref, atol=0.02 * np.abs(ref).max())


def test_weights_behind_scales_fp16_cannot_hold_are_re_rounded(residual_onnx: Path, tmp_path: Path) -> None:
    """A near-dead channel (per-channel weight scale 1e-9, as BatchNorm folding leaves them) keeps code x scale as
    its weight: FP16 cannot hold the scale, so the codes are re-rounded against the scale it does hold."""
    from onnx import numpy_helper

    calib = np.random.default_rng(1).standard_normal((32, 3, 8, 8)).astype(np.float32)
    int8 = _quantize(residual_onnx, calib, tmp_path)
    inits = {i.name: i for i in int8.graph.initializer}
    dq = next(n for n in int8.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
              and inits[n.input[0]].data_type == TensorProto.INT8 and len(inits[n.input[0]].dims) == 4)
    scale = numpy_helper.to_array(inits[dq.input[1]]).copy()
    scale[0] = 1e-9
    inits[dq.input[1]].CopyFrom(numpy_helper.from_array(scale, dq.input[1]))
    q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float32)
    want = q * scale.reshape(-1, 1, 1, 1)
    notes: list[str] = []
    typed = to_fp16_typed(int8, notes=notes)
    after = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in typed.graph.initializer}
    s16 = after[dq.input[1]]
    got = after[dq.input[0]] * s16.reshape(-1, 1, 1, 1)
    assert np.all(np.abs(got - want) <= s16.reshape(-1, 1, 1, 1) / 2 + 1e-12)
    assert np.array_equal(after[dq.input[0]][1:], q[1:])  # the channels FP16 holds keep their codes
    assert notes and notes[0].startswith("fp16_typed: 1 weight channels")


@pytest.mark.gpu
def test_strongly_typed_engine_builds_and_matches_ort(residual_onnx: Path, tmp_path: Path) -> None:
    backend = TensorrtBackend({"batch": [1, 4, 8], "strongly_typed": True})
    why = backend.why_not_here()
    if why is not None:
        pytest.skip(f"needs TensorRT 10 or 11 and an NVIDIA GPU: {why}")
    from edgeopt.backends.base import run_batched
    from edgeopt.backends.ort.backend import OrtBackend

    path = tmp_path / "typed.onnx"
    onnx.save(to_fp16_typed(onnx.load(str(residual_onnx))), str(path))
    model = OnnxModel.from_file(path)
    plan = backend.plan(model)
    assert plan.strongly_typed and plan.precision == "fp16 (strongly typed)"
    engine = backend.build(model, plan, tmp_path / "typed.engine")
    assert engine.manifest is not None and engine.manifest.precision == plan.precision
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    ref = run_batched(OrtBackend().load(OnnxModel.from_file(residual_onnx)), {"x": x})[0]
    got = backend.load(engine).run({"x": x})[0]
    assert np.allclose(ref, got, atol=5e-2, rtol=5e-2)  # FP16 arithmetic in the engine
