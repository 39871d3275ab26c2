"""INT8 quantization passes (static, dynamic) and the INT8 variants `--quantize` adds to each target.

Variant builders are registered per backend, so a target's own quantization (e.g. TensorRT Q/DQ) can add its variants
from its pass module with `register_quantized_variants("tensorrt")`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgeopt.errors import ConfigError
from edgeopt.passes.onnx.fuse_transformer import FuseTransformer
from edgeopt.passes.onnx.quantize_dynamic import QuantizeDynamic
from edgeopt.passes.onnx.quantize_static import QuantizeStatic
from edgeopt.passes.registry import REGISTRY
from edgeopt.pipeline import step_name
from edgeopt.targets import Target, VariantSpec

VariantBuilder = Callable[[Target, Any], list[VariantSpec]]
_BUILDERS: dict[str, VariantBuilder] = {}
_NOT_BEFORE_QUANTIZATION = ("ort_optimize",)  # ORT-fused graphs hold contrib ops the quantizer cannot read


def register_quantized_variants(backend: str) -> Callable[[VariantBuilder], VariantBuilder]:
    """Decorator: `fn(target, cfg) -> list[VariantSpec]` builds the INT8 variants of targets on `backend`."""

    def deco(fn: VariantBuilder) -> VariantBuilder:
        _BUILDERS[backend] = fn
        return fn

    return deco


def quantized_variants(target: Target, cfg: Any) -> list[VariantSpec]:
    """The INT8 variants `cfg.quantize` (static, dynamic or auto) adds to `target`."""
    REGISTRY.names()  # loads optional pass modules, which register the builders of their backends
    builder = _BUILDERS.get(target.backend)
    if builder is None:
        supported = ", ".join(sorted(_BUILDERS)) or "none"
        raise ConfigError(
            f"--quantize {cfg.quantize} is not available for target '{target.name}' (backend '{target.backend}'; "
            f"backends with INT8 variants: {supported})",
            "drop --quantize, or compile that target separately",
        )
    return builder(target, cfg)


def float_chain(target: Target, drop: tuple[str, ...] = _NOT_BEFORE_QUANTIZATION) -> list[Any]:
    """The target's FP32 ONNX-to-ONNX chain that quantization goes after (minus the passes named in `drop`)."""
    fp32 = next((v for v in target.variants if v.precision == "fp32"), None)
    steps = list(fp32.passes) if fp32 is not None else ["dynamic_batch", "simplify"]
    return [s for s in steps if step_name(s) not in drop]


@register_quantized_variants("ort")
def ort_variants(target: Target, cfg: Any) -> list[VariantSpec]:
    """ONNX Runtime CPU: 'int8' (static, U8S8 Q/DQ) and/or 'int8-dynamic'."""
    chain = float_chain(target)
    threads = cfg.latency.threads
    out: list[VariantSpec] = []
    if cfg.quantize in ("static", "auto"):
        static = {
            "method": cfg.calibration_method, "samples": cfg.calibration_samples,
            "max_accuracy_drop": cfg.max_accuracy_drop, "metric": cfg.metric, "eval_samples": cfg.eval_samples,
            "threads": threads, "format": "auto" if cfg.quantize == "auto" else "qdq",
            "bias_correction": cfg.bias_correction,
        }
        out.append(VariantSpec(
            name="int8", precision="int8", passes=[*chain, {QuantizeStatic.name: static}],
            description=f"static INT8 (U8S8 Q/DQ, per-channel weights, {cfg.calibration_method} calibration)",
        ))
    if cfg.quantize in ("dynamic", "auto"):
        dynamic = {"max_accuracy_drop": cfg.max_accuracy_drop, "metric": cfg.metric, "eval_samples": cfg.eval_samples,
                   "threads": threads}
        out.append(VariantSpec(
            name="int8-dynamic", precision="int8",
            passes=[*chain, FuseTransformer.name, {QuantizeDynamic.name: dynamic}],
            description="dynamic INT8 (int8 MatMul/Gemm weights, activations quantized at run time), after "
                        "transformer fusions (MultiHeadAttention, SkipLayerNorm, BiasGelu)",
        ))
    return out


__all__ = ["QuantizeDynamic", "QuantizeStatic", "quantized_variants", "register_quantized_variants"]
