"""Typed configs of the quantization passes (declared here so the algorithms and the passes share one definition)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeopt.evaluate.metric import QualityMetric
from edgeopt.passes.base import PassConfig
from edgeopt.quant.ranges import DEFAULT_PERCENTILE


class SpeedCheckConfig(PassConfig):
    """Timing of INT8 against FP32 inside a quantization pass."""

    speed_check: bool = Field(True, description="time INT8 vs FP32 and diagnose/remedy an INT8 build that is slower")
    min_speedup: float = Field(1.0, gt=0, description="INT8 must be at least this much faster than FP32")
    timing_iters: int = Field(30, ge=5)
    timing_seconds: float = Field(20.0, gt=0, description="cap on each interleaved timing run")
    threads: int | None = Field(None, ge=1, description="intra-op threads for timing; default: all cores")


class AccuracyBudgetConfig(PassConfig):
    """The accuracy budget of a static INT8 build and its fallback: keep the most sensitive nodes float, step by step,
    until the build is within the budget."""

    max_accuracy_drop: float | None = Field(1.0, ge=0, description="budget in points vs float; None: no check")
    metric: QualityMetric = Field("auto", description="what the budget applies to (edgeopt.evaluate.metric)")
    eval_samples: int | None = Field(None, ge=1, description="evaluation samples for the budget (default: all)")
    fallback_steps: int = Field(6, ge=0, description="most re-quantizations while keeping nodes in float")
    max_float_fraction: float = Field(0.5, gt=0, le=1, description="most compute nodes the fallback keeps float")
    sensitivity_samples: int = Field(16, ge=1)


class StaticQuantizeConfig(SpeedCheckConfig, AccuracyBudgetConfig):
    """Static INT8 (U8S8 by default) from a calibration table, with accuracy-aware fallback and speed checks."""

    method: Literal["minmax", "entropy", "percentile", "mse"] = "minmax"
    percentile: float = Field(DEFAULT_PERCENTILE, gt=50, le=100)
    samples: int | None = Field(None, ge=1, description="calibration samples (default: all)")
    batch_size: int = Field(8, ge=1, description="calibration batch size (peak memory scales with it)")
    format: Literal["qdq", "qoperator", "auto"] = Field("qdq", description="auto: keep the faster of the two")
    activation_type: Literal["uint8", "int8"] = "uint8"
    activation_symmetric: bool = False
    per_channel: bool = True
    reduce_range: bool = Field(False, description="7-bit weights (CPUs without VNNI can saturate at 8)")
    quantize_bias: bool = Field(True, description="int32 bias (False: bias stays float)")
    op_types: list[str] | None = Field(None, description="op types to quantize; default: all ORT can")
    exclude_op_types: list[str] = Field(default_factory=list)
    exclude_nodes: list[str] = Field(default_factory=list)
    bias_correction: bool = Field(False, description="correct each quantized Conv/Gemm bias for the mean shift "
                                  "INT8 causes at its output, measured on calibration samples (QDQ format only)")
    bias_correction_samples: int = Field(64, ge=1, description="calibration samples the bias correction measures on")


class DynamicQuantizeConfig(SpeedCheckConfig):
    """Dynamic INT8: int8 weights, activations quantized at run time (MatMul/Gemm-heavy models)."""

    # Gather: embedding tables (int8 rows, dequantized on lookup) — the bulk of a transformer encoder's file.
    op_types: list[str] = Field(default_factory=lambda: ["MatMul", "Gemm", "Attention", "LSTM", "GRU", "Gather"])
    per_channel: bool = False
    reduce_range: bool = False
    exclude_nodes: list[str] = Field(default_factory=list)
    max_accuracy_drop: float | None = Field(None, ge=0, description="budget in points vs float; None: no check")
    metric: QualityMetric = Field("auto", description="what the budget applies to (edgeopt.evaluate.metric)")
    eval_samples: int | None = Field(None, ge=1)
