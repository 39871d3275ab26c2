"""FP16-typed ONNX for strongly typed TensorRT builds (TensorRT 11, and TensorRT 10 with `--stronglyTyped`).

A strongly typed TensorRT network takes every layer's precision from the ONNX tensor types: there are no FP16/INT8
builder flags (TensorRT 11 removed them). So the float model must itself be FP16, and a Q/DQ model must carry FP16
scales, which ONNX allows from opset 19 on. This pass upgrades the opset where needed, converts float tensors,
initializers and Q/DQ scales to FP16 with ONNX Runtime's converter (`onnxruntime.transformers.float16`), keeps the
graph inputs and outputs FP32 (Casts at the edges, so callers feed the same arrays), and keeps any node named in
`keep_fp32` in FP32. int8 weights and zero points are untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, version_converter

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.errors import ConfigError
from edgeopt.passes.base import Pass, PassConfig, PassContext
from edgeopt.passes.onnx.common import save_onnx
from edgeopt.passes.registry import register_pass

log = logging.getLogger(__name__)

#: ONNX opset from which QuantizeLinear / DequantizeLinear take FP16 scales.
FP16_QDQ_OPSET = 19
_FP16_MAX = float(np.finfo(np.float16).max)
_FP16_TINY = float(np.finfo(np.float16).tiny)  # smallest normal FP16: below it a scale keeps few significant bits

# Output check against the FP32-typed input: FP16 arithmetic on a float model; on a Q/DQ model FP16 scales and sums
# also move some activations across an int8 rounding boundary, one step each.
_FLOAT_TOLERANCE = (2e-2, 0.999)
_QDQ_TOLERANCE = (0.1, 0.99)


class Fp16TypedConfig(PassConfig):
    """Nodes (ONNX names, see `edgeopt inspect MODEL --nodes`) that stay FP32."""

    keep_fp32: list[str] = []


def is_fp16_typed(proto: onnx.ModelProto) -> bool:
    """Whether the model carries FP16 tensors (a strongly typed build then computes in FP16)."""
    f16 = onnx.TensorProto.FLOAT16
    if any(i.data_type == f16 for i in proto.graph.initializer):
        return True
    values = [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]
    if any(v.type.tensor_type.elem_type == f16 for v in values):
        return True
    return any(n.op_type == "Cast" and any(a.name == "to" and a.i == f16 for a in n.attribute)
               for n in proto.graph.node)


def _default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _scale_problems(proto: onnx.ModelProto) -> list[str]:
    """Q/DQ scales FP16 cannot hold: beyond its range, or below its normal range (a few significant bits left)."""
    inits = {i.name: i for i in proto.graph.initializer}
    out = []
    for node in proto.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 2:
            continue
        init = inits.get(node.input[1])
        if init is None or init.data_type != onnx.TensorProto.FLOAT:
            continue
        scale = np.abs(numpy_helper.to_array(init))
        if scale.size and (scale.max() > _FP16_MAX or scale.min() < _FP16_TINY):
            out.append(f"{node.op_type} '{node.name}' scale {init.name} spans {scale.min():.3g}..{scale.max():.3g}")
    return out


def to_fp16_typed(proto: onnx.ModelProto, keep_fp32: list[str] | tuple[str, ...] = ()) -> onnx.ModelProto:
    """The model with FP16 float tensors and Q/DQ scales, FP32 graph inputs and outputs, nodes in `keep_fp32` FP32."""
    import onnx_ir as ir
    from onnxruntime.transformers.float16 import convert_float_to_float16

    names = {n.name for n in proto.graph.node}
    unknown = sorted(set(keep_fp32) - names)
    if unknown:
        raise ConfigError(f"fp16_typed: keep_fp32 names nodes the model does not have: {', '.join(unknown)}",
                          "list the model's node names with `edgeopt inspect MODEL --nodes`")
    has_qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node)
    if has_qdq and _default_opset(proto) < FP16_QDQ_OPSET:
        proto = version_converter.convert_version(proto, FP16_QDQ_OPSET)
    for problem in _scale_problems(proto):
        log.warning("fp16_typed: %s: FP16 rounds it coarsely", problem)
    converted = convert_float_to_float16(proto, keep_io_types=True, force_fp16_initializers=False,
                                         node_block_list=list(keep_fp32) or None)
    model = ir.from_proto(converted)  # the converter appends its edge Casts last: put the nodes back in order
    model.graph.sort()
    return ir.to_proto(model)


@register_pass
class Fp16Typed(Pass):
    """Convert an ONNX model (float or Q/DQ) to FP16 tensor types for strongly typed TensorRT builds."""

    name = "fp16_typed"
    version = "1"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.ONNX
    Config = Fp16TypedConfig
    check_tolerance = _FLOAT_TOLERANCE
    tools = ("onnx", "onnxruntime")

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        from edgeopt.backends.tensorrt.placement import is_quantized

        cfg: Fp16TypedConfig = self.config  # type: ignore[assignment]
        if not isinstance(model, OnnxModel):
            raise TypeError("fp16_typed converts ONNX models")
        if is_quantized(model.proto):  # the check must suit what the pass changes (an instance attribute)
            self.check_tolerance = _QDQ_TOLERANCE  # type: ignore[misc]
        typed = to_fp16_typed(model.proto, cfg.keep_fp32)
        onnx.checker.check_model(typed)
        save_onnx(typed, out_path)
        return OnnxModel.from_file(out_path)

__all__ = ["FP16_QDQ_OPSET", "Fp16Typed", "is_fp16_typed", "to_fp16_typed"]
