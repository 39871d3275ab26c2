"""Parity of every supported op: LiteRT output of the lowered model against ONNX Runtime on the same inputs.

One table states each case's tolerances: float32 as max abs diff relative to the largest reference output, int8 (a
Q/DQ model from onnxruntime.quantization.quantize_static) as max abs diff in steps of the output's quantization scale,
against ONNX Runtime running the same Q/DQ model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from tflite_helpers import make_model, output_scales, quantize_qdq, random_feeds, run_ort, run_tflite, to_tflite

pytest.importorskip("ai_edge_litert")

N = helper.make_node


def w(seed: int, *shape: int, scale: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def f32(*values: float) -> np.ndarray:
    return np.asarray(values, np.float32)


def i64(*values: int) -> np.ndarray:
    return np.asarray(values, np.int64)


X = {"x": (1, 3, 8, 8)}
CONV = {"cw": w(1, 8, 3, 3, 3), "cb": w(2, 8)}


def conv_then(*nodes: onnx.NodeProto, out: str = "y", inits: dict | None = None, opset: int = 17,
              extra_out: tuple[str, ...] = ()) -> onnx.ModelProto:
    """x[1,3,8,8] -> Conv(8, 3x3, pad 1) -> c -> nodes: the op under test sees NHWC-stored data."""
    conv = N("Conv", ["x", "cw", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1])
    return make_model([conv, *nodes], X, [out, *extra_out], {**CONV, **(inits or {})}, opset)


def conv(**attrs: object) -> Callable[[], onnx.ModelProto]:
    shape = attrs.pop("x", (1, 3, 8, 8))
    wshape = attrs.pop("w", (8, 3, 3, 3))
    return lambda: make_model([N("Conv", ["x", "cw", "cb"], ["y"], name="conv", **attrs)], {"x": shape}, ["y"],
                              {"cw": w(3, *wshape), "cb": w(4, wshape[0])})


def unary(op: str, opset: int = 17, **attrs: object) -> Callable[[], onnx.ModelProto]:
    return lambda: conv_then(N(op, ["c"], ["y"], name=op.lower(), **attrs), opset=opset)


def clip(lo: float, hi: float) -> Callable[[], onnx.ModelProto]:
    return lambda: conv_then(N("Clip", ["c", "lo", "hi"], ["y"], name="clip"), inits={"lo": f32(lo), "hi": f32(hi)})


def pool(op: str, **attrs: object) -> Callable[[], onnx.ModelProto]:
    return lambda: conv_then(N(op, ["c"], ["y"], name="pool", **attrs))


def resize(mode: str, coord: str, **extra: object) -> Callable[[], onnx.ModelProto]:
    def build() -> onnx.ModelProto:
        node = N("Resize", ["c", "", "scales"], ["y"], name="resize", mode=mode, coordinate_transformation_mode=coord,
                 **extra)
        return conv_then(node, inits={"scales": f32(1, 1, 2, 2)})
    return build


def seq_model(nodes: list[onnx.NodeProto], inits: dict | None = None, shape: tuple = (1, 5, 16), opset: int = 17,
              outputs: tuple[str, ...] = ("y",)) -> onnx.ModelProto:
    return make_model(nodes, {"x": shape}, list(outputs), inits, opset)


def layer_norm_decomposed() -> onnx.ModelProto:
    nodes = [
        N("ReduceMean", ["x"], ["m"], axes=[-1]), N("Sub", ["x", "m"], ["d"]), N("Pow", ["d", "two"], ["p"]),
        N("ReduceMean", ["p"], ["v"], axes=[-1]), N("Add", ["v", "eps"], ["ve"]), N("Sqrt", ["ve"], ["s"]),
        N("Div", ["d", "s"], ["n"]), N("Mul", ["n", "g"], ["ng"]), N("Add", ["ng", "b"], ["y"]),
    ]
    return seq_model(nodes, {"two": f32(2.0), "eps": f32(1e-5), "g": w(5, 16), "b": w(6, 16)})


def attention_mask() -> onnx.ModelProto:
    nodes = [
        N("Unsqueeze", ["mask", "ax"], ["m4"]), N("Cast", ["m4"], ["mf"], to=onnx.TensorProto.FLOAT),
        N("Sub", ["one", "mf"], ["inv"]), N("Mul", ["inv", "big"], ["bias"]), N("Equal", ["m4", "zero"], ["eq"]),
        N("Where", ["eq", "bias", "x"], ["sel"]), N("Add", ["sel", "x"], ["y"]),
    ]
    inits = {"ax": i64(1, 2), "one": f32(1.0), "big": f32(-1e4), "zero": i64(0)}
    return make_model(nodes, {"x": (1, 2, 6, 6), "mask": (1, 6)}, ["y"], inits, dtypes={"mask": "int64"})


def embedding() -> onnx.ModelProto:
    nodes = [N("Gather", ["table", "ids"], ["e"], axis=0), N("Add", ["e", "pos"], ["y"])]
    return make_model(nodes, {"ids": (1, 6)}, ["y"], {"table": w(7, 20, 8), "pos": w(8, 6, 8)},
                      dtypes={"ids": "int64"})


def attention_scores() -> onnx.ModelProto:
    nodes = [N("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), N("MatMul", ["x", "kt"], ["s"]),
             N("Softmax", ["s"], ["y"], axis=-1)]
    return make_model(nodes, {"x": (1, 2, 5, 8), "k": (1, 2, 5, 8)}, ["y"])


def gather_nd_mask() -> onnx.ModelProto:
    """MiniLM's SDPA export: the bool attention mask re-indexed by a constant GatherND ([1,1,1,S,2] indices)."""
    seq = 6
    idx = np.stack([np.zeros(seq, np.int64), np.arange(seq)], -1).reshape(1, 1, 1, seq, 2)
    nodes = [N("Cast", ["mask"], ["mb"], to=onnx.TensorProto.BOOL), N("GatherND", ["mb", "idx"], ["g"]),
             N("Where", ["g", "zero", "big"], ["bias"]), N("Add", ["x", "bias"], ["y"])]
    inits = {"idx": idx, "zero": f32(0.0), "big": f32(-1e4)}
    return make_model(nodes, {"x": (1, 2, seq, seq), "mask": (1, seq)}, ["y"], inits, dtypes={"mask": "int64"})


def softmax_nan_guard() -> onnx.ModelProto:
    """MiniLM's SDPA export: Where(IsNaN(softmax), 0, softmax) before the value MatMul."""
    nodes = [N("MatMul", ["x", "k"], ["s"]), N("Softmax", ["s"], ["p"], axis=-1), N("IsNaN", ["p"], ["nan"]),
             N("Where", ["nan", "zero", "p"], ["pz"]), N("MatMul", ["pz", "x"], ["y"])]
    return make_model(nodes, {"x": (1, 2, 5, 8), "k": (1, 2, 8, 5)}, ["y"], {"zero": f32(0.0)})


def l2_normalize() -> onnx.ModelProto:
    """Sentence-embedding normalization as torch exports it: x / max(ReduceL2(x, keepdims), eps)."""
    nodes = [N("ReduceL2", ["x", "a"], ["n"], keepdims=1), N("Clip", ["n", "eps"], ["c"]), N("Div", ["x", "c"], ["y"])]
    return make_model(nodes, {"x": (1, 16)}, ["y"], {"a": i64(1), "eps": f32(1e-12)}, opset=18)


@dataclass(frozen=True)
class Case:
    """One parity case: the model, the float32 tolerance and the int8 one (None: no int8 case)."""

    build: Callable[[], onnx.ModelProto]
    fp32: float = 1e-5
    int8: float | None = None


# The tolerance table. fp32: max |tflite - ort| / max |ort|. int8: max |tflite - ort| / output scale.
CASES: dict[str, Case] = {
    "conv": Case(conv(pads=[1, 1, 1, 1]), 1e-5, 2),
    "conv_stride2_explicit_pad": Case(conv(pads=[1, 1, 1, 1], strides=[2, 2]), 1e-5, 2),
    "conv_same_upper": Case(conv(auto_pad="SAME_UPPER", strides=[2, 2]), 1e-5, 2),
    "conv_dilated": Case(conv(pads=[2, 2, 2, 2], dilations=[2, 2]), 1e-5, 2),
    "conv_1x1_asym_pads": Case(conv(w=(8, 3, 1, 1), pads=[0, 1, 1, 0]), 1e-5, 2),
    "depthwise": Case(conv(x=(1, 8, 8, 8), w=(8, 1, 3, 3), group=8, pads=[1, 1, 1, 1]), 1e-5, 2),
    "depthwise_multiplier2": Case(conv(x=(1, 4, 8, 8), w=(8, 1, 3, 3), group=4, pads=[1, 1, 1, 1]), 1e-5, 2),
    "grouped_conv": Case(conv(x=(1, 8, 8, 8), w=(8, 4, 3, 3), group=2, pads=[1, 1, 1, 1]), 1e-5, 2),
    "conv_relu_fused": Case(unary("Relu"), 1e-5, 2),
    "conv_relu6_fused": Case(clip(0, 6), 1e-5, 2),
    "gemm": Case(lambda: make_model([N("Gemm", ["x", "w", "b"], ["y"], transB=1)], {"x": (2, 16)}, ["y"],
                                    {"w": w(9, 10, 16), "b": w(10, 10)}), 1e-5, 2),
    "gemm_alpha_beta": Case(lambda: make_model([N("Gemm", ["x", "w", "b"], ["y"], alpha=0.5, beta=2.0)],
                                               {"x": (2, 16)}, ["y"], {"w": w(9, 16, 10), "b": w(10, 10)}), 1e-5),
    "matmul_const_3d": Case(lambda: seq_model([N("MatMul", ["x", "w"], ["y"])], {"w": w(11, 16, 8)}), 1e-5, 2),
    "matmul_batched": Case(lambda: make_model([N("MatMul", ["a", "b"], ["y"])], {"a": (1, 2, 5, 8),
                                                                                 "b": (1, 2, 8, 6)}, ["y"]), 1e-5, 2),
    "attention_transposed_k": Case(attention_scores, 1e-5),
    "add_broadcast_const": Case(lambda: conv_then(N("Add", ["c", "k"], ["y"]), inits={"k": w(12, 8, 1, 1)}), 1e-5, 2),
    "add_two_relu": Case(lambda: conv_then(N("Conv", ["x", "cw", "cb"], ["c2"], pads=[1, 1, 1, 1]),
                                           N("Add", ["c", "c2"], ["a"]), N("Relu", ["a"], ["y"])), 1e-5, 2),
    "sub_mul_div": Case(lambda: conv_then(N("Sub", ["c", "k1"], ["s"]), N("Mul", ["s", "k2"], ["m"]),
                                          N("Div", ["m", "two"], ["y"]),
                                          inits={"k1": f32(0.1), "k2": w(13, 1, 8, 1, 1), "two": f32(2.0)}), 1e-5),
    "mul_int8": Case(lambda: conv_then(N("Mul", ["c", "k2"], ["y"]), inits={"k2": w(13, 1, 8, 1, 1)}), 1e-5, 2),
    "add_lower_rank_input": Case(lambda: make_model([N("Add", ["x", "b"], ["y"])], {"x": (1, 4, 6), "b": (6,)},
                                                    ["y"]), 1e-6),
    "relu": Case(lambda: make_model([N("Relu", ["x"], ["y"])], X, ["y"]), 1e-6),
    "leaky_relu": Case(unary("LeakyRelu", alpha=0.1), 1e-5, 2),
    "sigmoid": Case(unary("Sigmoid"), 1e-5, 2),
    "hard_sigmoid": Case(unary("HardSigmoid", alpha=0.2, beta=0.5), 1e-5),
    "hard_swish": Case(unary("HardSwish"), 1e-5, 2),
    "tanh": Case(unary("Tanh"), 1e-5, 2),
    "gelu": Case(unary("Gelu", opset=20), 1e-5),
    "gelu_tanh": Case(unary("Gelu", opset=20, approximate="tanh"), 1e-5),
    "erf": Case(unary("Erf"), 1e-5),
    "clip_general": Case(clip(-0.5, 0.7), 1e-6),
    "clip_n1_1": Case(clip(-1, 1), 1e-6),
    "prelu": Case(lambda: conv_then(N("PRelu", ["c", "s"], ["y"]), inits={"s": w(15, 8, 1, 1)}), 1e-6),
    "batch_norm": Case(lambda: conv_then(N("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"]),
                                         inits={"g": w(16, 8), "b": w(17, 8), "m": w(18, 8),
                                                "v": np.abs(w(19, 8)) + 0.5}), 1e-5),
    "max_pool_k3s2p1": Case(pool("MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), 1e-6, 1),
    "relu_max_pool_k3s2p1": Case(lambda: conv_then(N("Relu", ["c"], ["r"]), N(
        "MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])), 1e-6, 1),
    "max_pool_k2s2": Case(pool("MaxPool", kernel_shape=[2, 2], strides=[2, 2]), 1e-6, 1),
    "max_pool_ceil": Case(pool("MaxPool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), 1e-6, 1),
    "avg_pool_same": Case(pool("AveragePool", kernel_shape=[3, 3], pads=[1, 1, 1, 1]), 1e-5, 2),
    "avg_pool_count_pad": Case(pool("AveragePool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                    count_include_pad=1), 1e-5),
    "global_avg_pool": Case(pool("GlobalAveragePool"), 1e-5, 2),
    "global_max_pool": Case(pool("GlobalMaxPool"), 1e-6),
    "reshape": Case(lambda: conv_then(N("Reshape", ["c", "s"], ["y"]), inits={"s": i64(1, 8, 64)}), 1e-5, 2),
    "flatten_gemm": Case(lambda: conv_then(N("Flatten", ["c"], ["f"]), N("Gemm", ["f", "fw"], ["y"], transB=1),
                                           inits={"fw": w(14, 10, 512, scale=0.05)}), 1e-5, 2),
    "squeeze_unsqueeze": Case(lambda: conv_then(N("GlobalAveragePool", ["c"], ["g"]), N("Squeeze", ["g", "a"], ["s"]),
                                                N("Unsqueeze", ["s", "b"], ["y"]),
                                                inits={"a": i64(2, 3), "b": i64(1)}), 1e-5),
    "transpose_to_nhwc": Case(lambda: conv_then(N("Transpose", ["c"], ["y"], perm=[0, 2, 3, 1])), 1e-5, 2),
    "concat_channels": Case(lambda: conv_then(N("Conv", ["x", "cw", "cb"], ["c2"], pads=[1, 1, 1, 1]),
                                              N("Concat", ["c", "c2"], ["y"], axis=1)), 1e-5, 2),
    "split_unequal": Case(lambda: conv_then(N("Split", ["c", "sp"], ["y", "z"], axis=1), inits={"sp": i64(3, 5)},
                                            extra_out=("z",)), 1e-5, 2),
    "split_equal": Case(lambda: conv_then(N("Split", ["c"], ["y", "z"], axis=2, num_outputs=2), opset=18,
                                          extra_out=("z",)), 1e-5),
    "slice_steps": Case(lambda: conv_then(N("Slice", ["c", "st", "en", "ax", "sp"], ["y"]),
                                          inits={"st": i64(1, 1, 0), "en": i64(7, 8, -1), "ax": i64(1, 2, 3),
                                                 "sp": i64(2, 1, 2)}), 1e-6, 1),
    "slice_negative_step": Case(lambda: conv_then(N("Slice", ["c", "st", "en", "ax", "sp"], ["y"]),
                                                  inits={"st": i64(-1), "en": i64(-100), "ax": i64(3),
                                                         "sp": i64(-1)}), 1e-6),
    "pad_constant": Case(lambda: conv_then(N("Pad", ["c", "p"], ["y"]), inits={"p": i64(0, 0, 1, 2, 0, 0, 2, 1)}),
                         1e-6, 1),
    "pad_value": Case(lambda: conv_then(N("Pad", ["c", "p", "v"], ["y"]),
                                        inits={"p": i64(0, 0, 1, 2, 0, 0, 2, 1), "v": f32(0.5)}), 1e-6),
    "pad_reflect": Case(lambda: conv_then(N("Pad", ["c", "p"], ["y"], mode="reflect"),
                                          inits={"p": i64(0, 0, 1, 2, 0, 0, 2, 1)}), 1e-6),
    "resize_nearest_asymmetric": Case(resize("nearest", "asymmetric", nearest_mode="floor"), 1e-6, 1),
    "resize_nearest_half_pixel": Case(resize("nearest", "half_pixel"), 1e-6),
    "resize_bilinear_half_pixel": Case(resize("linear", "half_pixel"), 1e-5, 2),
    "resize_bilinear_align_corners": Case(resize("linear", "align_corners"), 1e-5),
    "resize_bilinear_asymmetric": Case(resize("linear", "asymmetric"), 1e-5),
    "softmax_last_axis": Case(lambda: seq_model([N("Softmax", ["x"], ["y"], axis=-1)]), 1e-5, 2),
    "softmax_channels_nhwc": Case(lambda: conv_then(N("Softmax", ["c"], ["y"], axis=1)), 1e-5),
    "reduce_mean_keepdims": Case(lambda: conv_then(N("ReduceMean", ["c"], ["y"], axes=[2, 3])), 1e-5, 2),
    "reduce_mean_opset18": Case(lambda: conv_then(N("ReduceMean", ["c", "a"], ["y"], keepdims=0),
                                                  inits={"a": i64(2, 3)}, opset=18), 1e-5),
    "reduce_sum_max": Case(lambda: conv_then(N("ReduceSum", ["c", "a"], ["s"], keepdims=0),
                                             N("ReduceMax", ["s"], ["y"], axes=[1], keepdims=1),
                                             inits={"a": i64(1)}), 1e-5),
    "layer_norm": Case(lambda: seq_model([N("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)],
                                         {"g": w(5, 16), "b": w(6, 16)}), 1e-5, 2),
    "layer_norm_decomposed": Case(layer_norm_decomposed, 1e-5),
    "gather_embedding": Case(embedding, 1e-6),
    "gather_scalar_index": Case(lambda: seq_model([N("Gather", ["x", "i"], ["y"], axis=1)], {"i": np.asarray(0)}),
                                1e-6),
    "matmul_gather": Case(lambda: seq_model([N("MatMul", ["x", "w"], ["m"]), N("Gather", ["m", "i"], ["y"], axis=1)],
                                            {"w": w(11, 16, 8), "i": np.asarray(-1)}), 1e-5, 2),
    "gather_nd_constant_indices": Case(lambda: seq_model([N("GatherND", ["x", "i"], ["y"])],
                                                         {"i": i64(0, 1, 0, 3, 0, -1).reshape(3, 2)}), 1e-6),
    "gather_nd_full_index": Case(lambda: seq_model([N("GatherND", ["x", "i"], ["y"])],
                                                   {"i": i64(0, 4, 15, 0, 0, -2).reshape(2, 3)}), 1e-6),
    "gather_nd_bool_mask": Case(gather_nd_mask, 1e-6),
    "softmax_isnan_where": Case(softmax_nan_guard, 1e-5),
    "reduce_l2_channels": Case(lambda: conv_then(N("ReduceL2", ["c", "a"], ["y"], keepdims=1),
                                                 inits={"a": i64(1)}, opset=18), 1e-5),
    "reduce_l1_spatial": Case(lambda: conv_then(N("ReduceL1", ["c"], ["y"], axes=[2, 3], keepdims=0)), 1e-5),
    "reduce_sum_square_last": Case(lambda: seq_model([N("ReduceSumSquare", ["x"], ["y"], axes=[-1], keepdims=0)]),
                                   1e-5),
    "l2_normalize": Case(l2_normalize, 1e-6),
    "identity_dropout": Case(lambda: conv_then(N("Identity", ["c"], ["d"]), N("Dropout", ["d"], ["y"])), 1e-5),
    "cast_equal_where": Case(attention_mask, 1e-6),
    "expand_tile": Case(lambda: seq_model([N("Expand", ["x", "s"], ["e"]), N("Tile", ["e", "r"], ["y"])],
                                          {"s": i64(2, 5, 16), "r": i64(1, 2, 1)}), 1e-6),
    "max_min": Case(lambda: conv_then(N("Max", ["c", "k"], ["m"]), N("Min", ["m", "k2"], ["y"]),
                                      inits={"k": f32(-0.2), "k2": f32(0.4)}), 1e-6),
    "sqrt_exp_log": Case(lambda: conv_then(N("Abs", ["c"], ["a"]), N("Sqrt", ["a"], ["s"]), N("Exp", ["s"], ["e"]),
                                           N("Log", ["e"], ["y"])), 1e-5),
}


def _rel_err(ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    assert [r.shape for r in ref] == [g.shape for g in got]
    scale = max(float(np.max(np.abs(r))) for r in ref) or 1.0
    return max(float(np.max(np.abs(r.astype(np.float64) - g))) for r, g in zip(ref, got, strict=True)) / scale


@pytest.mark.parametrize("name", list(CASES))
def test_fp32_parity(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    model = case.build()
    feeds = random_feeds(model)
    ref = run_ort(model, feeds)
    got = run_tflite(to_tflite(model, tmp_path / "m.tflite"), feeds)
    err = _rel_err(ref, got)
    assert err <= case.fp32, f"{name}: relative max abs diff {err:.3g} > {case.fp32:g}"


INT8_CASES = [n for n, c in CASES.items() if c.int8 is not None]


@pytest.mark.parametrize("name", INT8_CASES)
def test_int8_parity(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    assert case.int8 is not None
    qdq = quantize_qdq(case.build(), tmp_path)
    feeds = random_feeds(qdq, seed=5)
    ref = run_ort(qdq, feeds)
    art = to_tflite(qdq, tmp_path / "m.tflite", precision="int8")
    # Everything runs in int8: the only DEQUANTIZEs are at the outputs (LayerNorm has no int8 kernel: float island).
    float_islands = 1 if name == "layer_norm" else 0
    assert art.op_histogram().get("DEQUANTIZE", 0) <= len(qdq.graph.output) + float_islands, art.op_histogram()
    got = run_tflite(art, feeds)
    scales = output_scales(qdq)
    for out, r, g in zip(qdq.graph.output, ref, got, strict=True):
        step = scales[out.name] or 1e-5 * max(1.0, float(np.max(np.abs(r))))
        steps = float(np.max(np.abs(r - g))) / step
        assert steps <= case.int8, f"{name}/{out.name}: {steps:.2f} quantization steps off (> {case.int8})"


def test_isnan_finds_nan_in_any_layout(tmp_path: Path) -> None:
    """IsNaN -> NOT_EQUAL(x, x): NaN inputs (which random feeds never hold) are found, in ONNX and NHWC layout."""
    nodes = [N("IsNaN", ["x"], ["m"]), N("Where", ["m", "zero", "x"], ["y"])]
    flat = make_model(nodes, {"x": (2, 6)}, ["y", "m"], {"zero": f32(0.0)}, dtypes={"m": "bool"})
    x = np.random.default_rng(3).standard_normal((2, 6)).astype(np.float32)
    x[0, 1] = x[1, 4] = np.nan
    ref = run_ort(flat, {"x": x})
    got = run_tflite(to_tflite(flat, tmp_path / "flat.tflite"), {"x": x})
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_array_equal(got[0], ref[0])  # NaN replaced by 0 in both
    keep = f32(1, 0, 1, 1, 0, 1, 1, 1).reshape(1, 8, 1, 1)  # channels 1 and 4 become 0 / 0 = NaN
    nhwc = conv_then(N("Mul", ["c", "keep"], ["k"]), N("Div", ["k", "k"], ["d"]), N("IsNaN", ["d"], ["m"]),
                     N("Where", ["m", "zero", "c"], ["y"]), inits={"keep": keep, "zero": f32(0.0)})
    feeds = random_feeds(nhwc)
    ref, got = run_ort(nhwc, feeds), run_tflite(to_tflite(nhwc, tmp_path / "nhwc.tflite"), feeds)
    assert np.all(ref[0][:, [1, 4]] == 0) and np.all(ref[0][:, [0, 2]] != 0)
    assert _rel_err(ref, got) <= 1e-6
