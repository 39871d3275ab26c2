"""Save ONNX Runtime's graph optimizations (fusions, constant folding) into the artifact."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import onnx
import onnxruntime as ort

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.backends.ort.backend import session_options
from edgeopt.passes.base import Pass, PassConfig, PassContext
from edgeopt.passes.onnx.common import save_onnx
from edgeopt.passes.registry import register_pass


class OrtOptimizeConfig(PassConfig):
    """Optimization level saved into the model. 'extended' stays portable across x86 CPUs; 'all' adds
    layout transforms specific to this machine's ISA."""

    level: Literal["basic", "extended", "all"] = "extended"


@register_pass
class OrtOptimize(Pass):
    """Run ONNX Runtime's offline graph optimizer and keep the optimized graph (ORT-only ops may appear)."""

    name = "ort_optimize"
    version = "1"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.ONNX
    Config = OrtOptimizeConfig
    targets = ("ort-cpu",)
    check_tolerance = (1e-4, 0.99999)
    tools = ("onnxruntime",)

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        if not isinstance(model, OnnxModel) or model.path is None:
            raise TypeError("ort_optimize takes an OnnxModel on disk")
        cfg: OrtOptimizeConfig = self.config  # type: ignore[assignment]
        with tempfile.TemporaryDirectory(dir=ctx.work_dir) as tmp:
            raw = Path(tmp) / "optimized.onnx"
            so = session_options(1, cfg.level, optimized_path=str(raw))
            ort.InferenceSession(str(model.path), so, providers=["CPUExecutionProvider"])
            proto = onnx.load(str(raw))
        # ORT writes its own producer fields; fix them so the bytes depend only on the input.
        proto.producer_name = "edgeopt"
        proto.producer_version = ""
        save_onnx(proto, out_path)
        return OnnxModel.from_file(out_path)
