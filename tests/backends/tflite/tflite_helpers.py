"""Helpers of the TFLite backend tests: tiny ONNX models, ORT Q/DQ quantization, running both runtimes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgeopt.backends.tflite.artifact import TfliteModel
from edgeopt.backends.tflite.backend import TfliteRunner
from edgeopt.backends.tflite.context import ConvertOptions
from edgeopt.backends.tflite.converter import convert

_NP_TO_ONNX = {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64, "int32": TensorProto.INT32,
               "bool": TensorProto.BOOL}


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, tuple[int | str, ...]],
    outputs: list[str],
    inits: dict[str, np.ndarray] | None = None,
    opset: int = 17,
    dtypes: dict[str, str] | None = None,
) -> onnx.ModelProto:
    """A checked ONNX model from nodes; inputs are float32 unless `dtypes` says otherwise; output shapes inferred."""
    dtypes = dtypes or {}
    graph = helper.make_graph(
        nodes,
        "t",
        [helper.make_tensor_value_info(n, _NP_TO_ONNX[dtypes.get(n, "float32")], list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, _NP_TO_ONNX[dtypes.get(n, "float32")], None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset < 21 else 10
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.output}
    for out in model.graph.output:
        if out.name in inferred:
            out.CopyFrom(inferred[out.name])
    onnx.checker.check_model(model)
    return model


def random_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal float inputs (small non-negative ints for integer inputs) of the model's static shapes."""
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
        elif vi.type.tensor_type.elem_type == TensorProto.BOOL:
            feeds[vi.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[vi.name] = rng.integers(0, 4, shape).astype(np.int64)
    return feeds


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """ONNX Runtime (all optimizations: Q/DQ models run on its int8 kernels), one thread."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


def to_tflite(model: onnx.ModelProto, path: Path, **options: object) -> TfliteModel:
    """Convert with the given ConvertOptions fields and open the result."""
    path.write_bytes(convert(model, ConvertOptions(**options)))  # type: ignore[arg-type]
    return TfliteModel.from_file(path)


def run_tflite(artifact: TfliteModel, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run on LiteRT with one thread (inputs and outputs in ONNX layout)."""
    return TfliteRunner(artifact, 1).run(feeds)


def quantize_qdq(model: onnx.ModelProto, folder: Path, samples: int = 8, seed: int = 1) -> onnx.ModelProto:
    """ORT's static Q/DQ quantization (int8 activations and per-channel int8 weights), calibrated on random data."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    batches = [random_feeds(model, seed + i) for i in range(samples)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    src, dst = folder / "float.onnx", folder / "qdq.onnx"
    onnx.save(model, src)
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    return onnx.load(str(dst))


def output_scales(model: onnx.ModelProto) -> dict[str, float]:
    """Scale of each graph output produced by a DequantizeLinear (0 for float outputs)."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    out = {}
    for o in model.graph.output:
        node = producers.get(o.name)
        scale = 0.0
        if node is not None and node.op_type == "DequantizeLinear" and node.input[1] in inits:
            scale = float(np.max(inits[node.input[1]]))
        out[o.name] = scale
    return out
