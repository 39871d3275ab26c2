"""ONNX graph simplification: constant folding, shape inference and dead-code removal (onnxslim, onnxsim)."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.passes.base import Pass, PassConfig, PassContext
from edgeopt.passes.onnx.common import save_onnx
from edgeopt.passes.registry import register_pass

log = logging.getLogger(__name__)


class SimplifyConfig(PassConfig):
    """Which simplifiers run."""

    onnxslim: bool = True
    onnxsim: bool = True  # used only where installed


@register_pass
class Simplify(Pass):
    """Constant-fold, infer shapes and drop dead nodes with onnxslim (then onnxsim where installed)."""

    name = "simplify"
    version = "1"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.ONNX
    Config = SimplifyConfig
    check_tolerance = (1e-5, 0.999999)
    tools = ("onnx", "onnxslim", "onnxsim")

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        if not isinstance(model, OnnxModel):
            raise TypeError("simplify takes an OnnxModel")
        cfg: SimplifyConfig = self.config  # type: ignore[assignment]
        proto = onnx.ModelProto()
        proto.CopyFrom(model.proto)
        if cfg.onnxslim:
            import onnxslim

            proto = onnxslim.slim(proto)
        if cfg.onnxsim:
            try:
                import onnxsim
            except ImportError:
                onnxsim = None
            if onnxsim is not None:
                simplified, ok = onnxsim.simplify(proto)
                if ok:
                    proto = simplified
                else:
                    log.warning("onnxsim could not verify its result; kept the onnxslim output")
        save_onnx(proto, out_path)
        return OnnxModel.from_file(out_path)
