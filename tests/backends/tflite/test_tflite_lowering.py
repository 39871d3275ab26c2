"""Structure of lowered models (layouts, fusions, TRANSPOSE count) and the precision / I/O options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import helper
from tflite_helpers import make_model, output_scales, quantize_qdq, random_feeds, run_ort, run_tflite, to_tflite

pytest.importorskip("ai_edge_litert")

N = helper.make_node


def w(seed: int, *shape: int, scale: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def cnn() -> object:
    """x[1,3,16,16] -> Conv+Relu -> Conv(stride 2)+Clip(0,6) -> depthwise -> Add -> GAP -> Flatten -> Gemm."""
    nodes = [
        N("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), N("Relu", ["c1"], ["r1"]),
        N("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        N("Clip", ["c2", "lo", "hi"], ["r2"]),
        N("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1], group=32),
        N("Add", ["c3", "r2"], ["a"]), N("GlobalAveragePool", ["a"], ["g"]), N("Flatten", ["g"], ["f"]),
        N("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    inits = {"w1": w(1, 32, 3, 3, 3), "b1": w(2, 32), "w2": w(3, 32, 32, 3, 3, scale=0.1), "b2": w(4, 32),
             "w3": w(5, 32, 1, 3, 3), "b3": w(6, 32), "lo": np.float32(0), "hi": np.float32(6),
             "wf": w(7, 10, 32), "bf": w(8, 10)}
    return make_model(nodes, {"x": (1, 3, 16, 16)}, ["y"], inits)


def test_cnn_layout_needs_one_transpose_and_fuses_activations(tmp_path: Path) -> None:
    model = cnn()
    art = to_tflite(model, tmp_path / "m.tflite")
    ops = art.op_histogram()
    assert ops["TRANSPOSE"] == 1  # the NCHW input; weights were converted at compile time
    assert "RELU" not in ops and "RELU6" not in ops  # fused into CONV_2D
    assert ops["DEPTHWISE_CONV_2D"] == 1 and ops["CONV_2D"] == 2 and ops["FULLY_CONNECTED"] == 1
    feeds = random_feeds(model)
    np.testing.assert_allclose(run_tflite(art, feeds)[0], run_ort(model, feeds)[0], rtol=1e-5, atol=1e-5)


def test_transposes_are_free_and_matmul_uses_adjoint(tmp_path: Path) -> None:
    nodes = [N("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), N("MatMul", ["q", "kt"], ["y"])]
    model = make_model(nodes, {"q": (1, 2, 5, 8), "k": (1, 2, 5, 8)}, ["y"])
    ops = to_tflite(model, tmp_path / "m.tflite").op_histogram()
    assert ops == {"BATCH_MATMUL": 1}


def test_io_layout_nhwc_exposes_nhwc_and_drops_the_transpose(tmp_path: Path) -> None:
    model = cnn()
    art = to_tflite(model, tmp_path / "m.tflite", io_layout="nhwc")
    assert art.input_specs()[0].shape == (1, 16, 16, 3)
    assert "TRANSPOSE" not in art.op_histogram()
    feeds = random_feeds(model)  # the runner takes the ONNX layout and transposes for the model
    np.testing.assert_allclose(run_tflite(art, feeds)[0], run_ort(model, feeds)[0], rtol=1e-5, atol=1e-5)


def test_batch_option_fixes_a_dynamic_batch(tmp_path: Path) -> None:
    model = make_model([N("Relu", ["x"], ["y"])], {"x": ("n", 3, 4, 4)}, ["y"])
    art = to_tflite(model, tmp_path / "m.tflite", batch=2)
    assert art.input_specs()[0].shape == (2, 3, 4, 4)


def test_fp16_stores_half_weights_behind_dequantize(tmp_path: Path) -> None:
    model = cnn()
    fp32 = to_tflite(model, tmp_path / "a.tflite")
    fp16 = to_tflite(model, tmp_path / "b.tflite", precision="fp16")
    assert fp16.op_histogram()["DEQUANTIZE"] >= 8  # 4 filters + 4 biases
    assert fp16.size_bytes() < 0.6 * fp32.size_bytes()
    feeds = random_feeds(model)
    ref = run_ort(model, feeds)[0]
    got = run_tflite(fp16, feeds)[0]
    assert np.max(np.abs(got - ref)) <= 1e-2 * np.max(np.abs(ref))


def test_dynamic_int8_quantizes_large_weights_only(tmp_path: Path) -> None:
    model = cnn()
    art = to_tflite(model, tmp_path / "m.tflite", precision="dynamic_int8", min_weight_elements=1024)
    fp32 = to_tflite(model, tmp_path / "f.tflite")
    assert art.size_bytes() < fp32.size_bytes() - 3 * 32 * 32 * 9 // 2  # the 32x32x3x3 filter is int8
    feeds = random_feeds(model)
    ref = run_ort(model, feeds)[0]
    got = run_tflite(art, feeds)[0]
    cos = float(np.dot(ref.ravel(), got.ravel()) / (np.linalg.norm(ref) * np.linalg.norm(got)))
    assert cos > 0.995 and np.max(np.abs(got - ref)) <= 0.1 * np.max(np.abs(ref))


def test_dynamic_int8_fully_connected_has_per_channel_weights(tmp_path: Path) -> None:
    """Rows of very different magnitude (as in BERT's feed-forward layers) keep their precision: one scale per row."""
    rng = np.random.default_rng(0)
    weights = (rng.standard_normal((64, 48)) * np.geomspace(1e-3, 1.0, 64)[:, None]).astype(np.float32)
    model = make_model([N("Gemm", ["x", "w", "b"], ["y"], transB=1)], {"x": (4, 48)}, ["y"],
                       {"w": weights, "b": w(9, 64, scale=1e-3)})
    art = to_tflite(model, tmp_path / "m.tflite", precision="dynamic_int8", min_weight_elements=1024)
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(art.path)).get_tensor_details()
    (filt,) = [d for d in details if d["dtype"] == np.int8]
    assert filt["quantization_parameters"]["scales"].size == 64
    assert filt["quantization_parameters"]["quantized_dimension"] == 0
    feeds = random_feeds(model)
    ref, got = run_ort(model, feeds)[0], run_tflite(art, feeds)[0]
    # per output column, relative to that column's scale: per-tensor weights leave the small rows ~1% accurate
    rel = np.max(np.abs(got - ref), axis=0) / np.max(np.abs(ref), axis=0)
    assert float(np.max(rel)) < 0.05, float(np.max(rel))


@pytest.fixture(scope="module")
def qdq_cnn(tmp_path_factory: pytest.TempPathFactory) -> object:
    return quantize_qdq(cnn(), tmp_path_factory.mktemp("qdq"))


def test_int8_float_io_quantizes_inside(qdq_cnn: object, tmp_path: Path) -> None:
    art = to_tflite(qdq_cnn, tmp_path / "m.tflite", precision="int8")
    assert art.input_specs()[0].dtype == "float32" and art.output_specs()[0].dtype == "float32"
    ops = art.op_histogram()
    assert ops["QUANTIZE"] == 1 and ops["DEQUANTIZE"] == 1


def test_int8_io_dtype_int8(qdq_cnn: object, tmp_path: Path) -> None:
    art = to_tflite(qdq_cnn, tmp_path / "m.tflite", precision="int8", io_dtype="int8")
    assert art.input_specs()[0].dtype == "int8" and art.output_specs()[0].dtype == "int8"
    assert "QUANTIZE" not in art.op_histogram() and "DEQUANTIZE" not in art.op_histogram()
    feeds = random_feeds(qdq_cnn, seed=3)
    ref = run_ort(qdq_cnn, feeds)[0]
    got = run_tflite(art, feeds)[0]  # the runner (de)quantizes the model I/O
    float_io = run_tflite(to_tflite(qdq_cnn, tmp_path / "f.tflite", precision="int8"), feeds)[0]
    np.testing.assert_allclose(got, float_io, atol=1e-6)
    assert np.max(np.abs(got - ref)) <= 0.05 * np.max(np.abs(ref))


def test_erf_gelu_subgraph_becomes_one_gelu(tmp_path: Path) -> None:
    nodes = [N("Div", ["x", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
             N("Mul", ["x", "a"], ["m"]), N("Mul", ["m", "half"], ["y"])]
    inits = {"r2": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)}
    model = make_model(nodes, {"x": (1, 5, 16)}, ["y"], inits)
    art = to_tflite(model, tmp_path / "m.tflite")
    assert art.op_histogram() == {"GELU": 1}
    feeds = random_feeds(model)
    np.testing.assert_allclose(run_tflite(art, feeds)[0], run_ort(model, feeds)[0], atol=1e-6)


def test_matmul_bias_relu_become_one_fully_connected(tmp_path: Path) -> None:
    nodes = [N("MatMul", ["x", "w"], ["m"]), N("Add", ["m", "b"], ["a"]), N("Relu", ["a"], ["y"])]
    model = make_model(nodes, {"x": (1, 5, 16)}, ["y"], {"w": w(1, 16, 8), "b": w(2, 8)})
    art = to_tflite(model, tmp_path / "m.tflite")
    assert art.op_histogram() == {"FULLY_CONNECTED": 1}
    feeds = random_feeds(model)
    np.testing.assert_allclose(run_tflite(art, feeds)[0], run_ort(model, feeds)[0], atol=1e-5)


def test_int8_add_with_unrepresentable_rescale_falls_back_to_float(tmp_path: Path) -> None:
    # An attention mask of finfo.min quantizes to a scale of ~1e36: TFLite's int8 ADD would abort on it.
    q = {"s1": np.float32(0.01), "s2": np.float32(1.3e36), "z": np.int8(0), "z2": np.int8(127)}
    nodes = [
        N("QuantizeLinear", ["x", "s1", "z"], ["xq"]), N("DequantizeLinear", ["xq", "s1", "z"], ["xd"]),
        N("QuantizeLinear", ["m", "s2", "z2"], ["mq"]), N("DequantizeLinear", ["mq", "s2", "z2"], ["md"]),
        N("Add", ["xd", "md"], ["a"]), N("QuantizeLinear", ["a", "s2", "z2"], ["aq"]),
        N("DequantizeLinear", ["aq", "s2", "z2"], ["y"]),
    ]
    model = make_model(nodes, {"x": (1, 8), "m": (1, 8)}, ["y"], q)
    art = to_tflite(model, tmp_path / "m.tflite", precision="int8")
    assert art.op_histogram().get("ADD") == 1
    feeds = {"x": np.ones((1, 8), np.float32), "m": np.where(np.arange(8) < 4, 0.0, -3.4e38).astype(np.float32)[None]}
    np.testing.assert_allclose(run_tflite(art, feeds)[0], run_ort(model, feeds)[0], rtol=1e-6)


def test_int8_float_logits_keep_int8_fc_weights(qdq_cnn: object, tmp_path: Path) -> None:
    """With the output Q/DQ dropped (float logits, as edgeopt's quantizer emits), the last Gemm's product is float,
    but its weights stay the Q/DQ model's int8 ones (a dynamic-range FULLY_CONNECTED), not float32."""
    import onnx

    from edgeopt.quant.emit import unquantize_outputs

    model = onnx.ModelProto()
    model.CopyFrom(qdq_cnn)  # type: ignore[arg-type]
    assert unquantize_outputs(model) == ["y"]
    art = to_tflite(model, tmp_path / "m.tflite", precision="int8")
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(art.path)).get_tensor_details()
    fc = [d for d in details if list(d["shape"]) == [10, 32]]
    assert fc and all(d["dtype"] == np.int8 for d in fc)
    feeds = random_feeds(model, seed=4)
    ref, got = run_ort(model, feeds)[0], run_tflite(art, feeds)[0]
    assert np.max(np.abs(got - ref)) <= 0.05 * np.max(np.abs(ref))


def test_max_pool_padding_uses_pad_only_where_zeros_cannot_win(tmp_path: Path) -> None:
    """A padded max pool needs -inf padding (PADV2, which XNNPACK does not take); after a ReLU zeros are as good, so
    the delegated PAD is used. Float and int8 alike; the results match ONNX Runtime (int8: within one step)."""
    pool = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    conv = N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])
    inits = {"w": w(1, 8, 3, 3, 3), "b": w(2, 8)}
    after_relu = make_model([conv, N("Relu", ["c"], ["r"]), N("MaxPool", ["r"], ["y"], **pool)],
                            {"x": (1, 3, 8, 8)}, ["y"], inits)
    signed = make_model([conv, N("MaxPool", ["c"], ["y"], **pool)], {"x": (1, 3, 8, 8)}, ["y"], inits)
    feeds = random_feeds(after_relu)
    for model, pad_op in ((after_relu, "PAD"), (signed, "PADV2")):
        for precision, qmodel in (("float32", model), ("int8", quantize_qdq(model, tmp_path))):
            art = to_tflite(qmodel, tmp_path / f"{pad_op}-{precision}.tflite", precision=precision)
            ops = art.op_histogram()
            assert ops.get(pad_op) == 1 and len({"PAD", "PADV2"} & set(ops)) == 1, (precision, ops)
            step = output_scales(qmodel).get("y", 0.0) if precision == "int8" else 0.0
            np.testing.assert_allclose(run_tflite(art, feeds)[0], run_ort(qmodel, feeds)[0], atol=1.01 * step + 1e-5)
