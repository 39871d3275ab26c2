"""The `to_tflite` pass: lower an ONNX model (float or Q/DQ int8) to a .tflite flatbuffer, natively."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.backends.tflite import variants as _variants  # noqa: F401 - registers the --quantize variants
from edgeopt.backends.tflite.context import ConvertOptions
from edgeopt.passes.base import Pass, PassConfig, PassContext
from edgeopt.passes.registry import register_pass

# (max abs diff relative to the largest reference output, min cosine) of the numerical check, per precision.
# int8 is compared with ONNX Runtime running the same Q/DQ model, so only rounding differences remain.
TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (1e-4, 0.99999),
    "fp16": (2e-2, 0.999),
    "dynamic_int8": (0.25, 0.98),
    "int8": (0.1, 0.99),
}


class ToTfliteConfig(PassConfig):
    """Precision, layout and dtype of the model I/O, the batch, and static sizes of dynamic input dims."""

    precision: Literal["fp32", "fp16", "dynamic_int8", "int8"] = "fp32"
    io_layout: Literal["onnx", "nhwc"] = "onnx"
    io_dtype: Literal["float32", "int8"] = "float32"
    batch: int = Field(default=1, ge=1)
    input_shapes: dict[str, list[int]] = Field(default_factory=dict)


@register_pass
class ToTflite(Pass):
    """ONNX -> TFLite without TensorFlow: NHWC with few TRANSPOSEs, fused activations, fp32/fp16/int8."""

    name = "to_tflite"
    version = "2"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.TFLITE
    Config = ToTfliteConfig
    converts = True
    output_suffix = ".tflite"
    check_tolerance = TOLERANCES["fp32"]
    tools = ("onnx", "ai-edge-litert", "flatbuffers")

    def __init__(self, config: PassConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config)
        cfg: ToTfliteConfig = self.config  # type: ignore[assignment]
        # The check must suit the precision asked for; an instance attribute shadows the class default.
        self.check_tolerance = TOLERANCES[cfg.precision]  # type: ignore[misc]

    def options(self, model: OnnxModel | None = None, ctx: PassContext | None = None) -> ConvertOptions:
        """The converter options: this config, plus static sizes the context knows for the model's dynamic dims."""
        cfg: ToTfliteConfig = self.config  # type: ignore[assignment]
        shapes = {k: tuple(v) for k, v in cfg.input_shapes.items()}
        if model is not None and ctx is not None:
            shapes.update(_context_shapes(model, ctx, cfg.batch, set(shapes)))
        return ConvertOptions(
            precision=cfg.precision, io_layout=cfg.io_layout, io_dtype=cfg.io_dtype, batch=cfg.batch,
            input_shapes=tuple(sorted(shapes.items())),
        )

    def cache_extra(self, ctx: PassContext) -> dict[str, Any]:
        extra = super().cache_extra(ctx)
        extra["input_specs"] = [s.to_dict() for s in ctx.input_specs]  # they may fix dynamic dims (see options)
        return extra

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        from edgeopt.backends.tflite.artifact import TfliteModel
        from edgeopt.backends.tflite.converter import convert

        if not isinstance(model, OnnxModel):
            raise TypeError("to_tflite takes an OnnxModel")
        data = convert(model.proto, self.options(model, ctx))
        out_path.write_bytes(data)
        return TfliteModel.from_file(out_path)


def _context_shapes(model: OnnxModel, ctx: PassContext, batch: int, skip: set[str]) -> dict[str, tuple[int, ...]]:
    """Sizes for the model's dynamic non-batch dims from same-named static input specs of the context
    (e.g. --input-shape), the model's own static dims kept."""
    known = {s.name: s for s in ctx.input_specs}
    out: dict[str, tuple[int, ...]] = {}
    for own in model.input_specs():
        spec = known.get(own.name)
        if own.name in skip or spec is None or own.is_static or len(spec.shape) != len(own.shape):
            continue
        dims: list[int] = []
        for i, (mine, given) in enumerate(zip(own.shape, spec.shape, strict=True)):
            if isinstance(mine, int) and mine > 0:
                dims.append(mine)
            elif isinstance(given, int) and given > 0:
                dims.append(given)
            elif i == 0:
                dims.append(batch)
            else:
                break
        else:
            out[own.name] = tuple(dims)
    return out
