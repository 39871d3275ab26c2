"""The INT8 variants `--quantize` adds to TFLite targets: Q/DQ from edgeopt's calibration, then int8 lowering."""

from __future__ import annotations

from typing import Any

from edgeopt.passes.onnx.quantize import float_chain, register_quantized_variants
from edgeopt.passes.registry import REGISTRY
from edgeopt.targets import Target, VariantSpec

LOWER_PASS = "to_tflite"


def static_served(target: Target) -> bool:
    """Whether edgeopt's quantize_static pass declares that it serves `target` (its Q/DQ is what we lower)."""
    served = REGISTRY.get("quantize_static").targets
    return "*" in served or target.name in served


@register_quantized_variants("tflite")
def tflite_variants(target: Target, cfg: Any) -> list[VariantSpec]:
    """'int8': static int8 Q/DQ (int8 activations, per-channel weights) lowered to int8 TFLite kernels, where the
    quantize_static pass serves this target; 'int8-dynamic': TFLite dynamic-range quantization (int8 weights)."""
    chain = float_chain(target, drop=(LOWER_PASS,))
    out: list[VariantSpec] = []
    if cfg.quantize in ("static", "auto") and static_served(target):
        static = {
            "method": cfg.calibration_method, "samples": cfg.calibration_samples,
            "max_accuracy_drop": cfg.max_accuracy_drop, "metric": cfg.metric, "eval_samples": cfg.eval_samples,
            "threads": cfg.latency.threads, "format": "qdq", "activation_type": "int8", "speed_check": False,
            "bias_correction": cfg.bias_correction,
        }
        out.append(VariantSpec(
            name="int8", precision="int8",
            passes=[*chain, {"quantize_static": static}, {LOWER_PASS: {"precision": "int8"}}],
            description=f"static INT8 (S8S8 Q/DQ, per-channel weights, {cfg.calibration_method} calibration) "
                        "on LiteRT's int8 kernels",
        ))
    if cfg.quantize in ("dynamic", "auto"):
        out.append(VariantSpec(
            name="int8-dynamic", precision="int8", passes=[*chain, {LOWER_PASS: {"precision": "dynamic_int8"}}],
            description="dynamic-range INT8 (int8 weights, float activations; LiteRT hybrid kernels)",
        ))
    return out
