"""INT8 quantization: streaming calibration into a CalibrationTable, Q/DQ emission per target, accuracy-aware
fallback and speed checks. The passes in edgeopt.passes.onnx.quantize_* drive these pieces."""

from edgeopt.quant.calibration_table import CalibrationTable
from edgeopt.quant.collector import CollectionResult, collect_statistics
from edgeopt.quant.emit import ORT_X86, TENSORRT, EmitResult, QdqSpec, emit_qdq, prepare_model, protect_float_nodes
from edgeopt.quant.ranges import METHODS, tensor_range
from edgeopt.quant.sensitivity import node_sqnr, rank_nodes
from edgeopt.quant.statistics import TensorStats
from edgeopt.quant.store import calibrate

__all__ = [
    "METHODS",
    "ORT_X86",
    "TENSORRT",
    "CalibrationTable",
    "CollectionResult",
    "EmitResult",
    "QdqSpec",
    "TensorStats",
    "calibrate",
    "collect_statistics",
    "emit_qdq",
    "node_sqnr",
    "prepare_model",
    "protect_float_nodes",
    "rank_nodes",
    "tensor_range",
]
