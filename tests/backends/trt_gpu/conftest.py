"""Fixtures for the TensorRT target: a tiny residual CNN, its ORT-quantized forms, a trained digits CNN in ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def residual_cnn(seed: int = 0) -> onnx.ModelProto:
    """x[b,3,8,8] -> Conv -> Relu -> Conv -> Add(residual) -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> y."""
    rng = np.random.default_rng(seed)

    def init(name: str, *shape: int, scale: float = 0.3) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["a"], name="residual_add"),
        helper.make_node("Relu", ["a"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "residual_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        [init("w1", 8, 3, 3, 3), init("b1", 8, scale=0.1), init("w2", 8, 8, 3, 3, scale=0.2),
         init("b2", 8, scale=0.1), init("wf", 10, 8, scale=1.0), init("bf", 10, scale=0.1)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeopt-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save_proto(model: onnx.ModelProto, path: Path) -> Path:
    """Write an ONNX model and return its path."""
    path.write_bytes(model.SerializeToString())
    return path


def calib_inputs(n: int = 32, seed: int = 1) -> np.ndarray:
    """Calibration inputs for residual_cnn."""
    return np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32)


def ort_quantize(src: Path, dst: Path, **options: Any) -> Path:
    """ONNX Runtime's quantize_static on `src` (QDQ format; defaults unless `options` say otherwise)."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": calib_inputs()[i : i + 8]} for i in range(0, 32, 8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantize_static(str(src), str(dst), Reader(), **options)
    return dst


@pytest.fixture(scope="session")
def residual_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The float residual CNN as a file (read-only)."""
    return save_proto(residual_cnn(), tmp_path_factory.mktemp("trt_res") / "residual.onnx")


@pytest.fixture(scope="session")
def residual_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 calibration samples for the residual CNN (array 'x')."""
    path = tmp_path_factory.mktemp("trt_res_data") / "calib.npz"
    np.savez(path, x=calib_inputs())
    return path


@pytest.fixture(scope="session")
def ort_default_qdq(residual_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The residual CNN quantized by ORT's default quantize_static (asymmetric INT8 activations, INT32 biases)."""
    return ort_quantize(residual_onnx, tmp_path_factory.mktemp("trt_ort") / "ort_default.onnx")


@pytest.fixture(scope="session")
def ort_uint8_qdq(residual_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The residual CNN quantized by quantize_static with asymmetric UINT8 activations (the classic U8S8 default)."""
    from onnxruntime.quantization import QuantType

    return ort_quantize(residual_onnx, tmp_path_factory.mktemp("trt_ort_u8") / "ort_uint8.onnx",
                        activation_type=QuantType.QUInt8)


@pytest.fixture(scope="session")
def digits_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """edgeopt's digits CNN trained for a few epochs, exported to ONNX: (model, calibration .npz of training images,
    held-out images, their labels)."""
    import torch

    from edgeopt.models.digits import digits_data, train_digits_cnn

    model, x_test, y_test = train_digits_cnn(epochs=4)
    path = tmp_path_factory.mktemp("trt_digits") / "digits.onnx"
    torch.onnx.export(model, (torch.from_numpy(x_test[:2]),), str(path), dynamo=False, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17)
    calib = tmp_path_factory.mktemp("trt_digits_data") / "calib.npz"
    np.savez(calib, x=digits_data()["x_train"][:256])
    return path, calib, x_test, y_test
