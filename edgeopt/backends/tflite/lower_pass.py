"""The `to_tflite` pass: lower an ONNX model (float or Q/DQ int8) to a .tflite flatbuffer, natively."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel
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
    version = "1"
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

    def options(self) -> ConvertOptions:
        """The converter options this config stands for."""
        cfg: ToTfliteConfig = self.config  # type: ignore[assignment]
        return ConvertOptions(
            precision=cfg.precision, io_layout=cfg.io_layout, io_dtype=cfg.io_dtype, batch=cfg.batch,
            input_shapes=tuple(sorted((k, tuple(v)) for k, v in cfg.input_shapes.items())),
        )

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        from edgeopt.backends.tflite.artifact import TfliteModel
        from edgeopt.backends.tflite.converter import convert

        if not isinstance(model, OnnxModel):
            raise TypeError("to_tflite takes an OnnxModel")
        data = convert(model.proto, self.options())
        out_path.write_bytes(data)
        return TfliteModel.from_file(out_path)
