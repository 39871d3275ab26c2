"""Transformer fusion with ONNX Runtime's own optimizer (onnxruntime.transformers): LayerNorm, SkipLayerNorm, Gelu,
BiasGelu, attention and embedding subgraphs become single ORT contrib ops. Run before dynamic INT8: ORT's dynamic
quantizer then quantizes the fused graph, which is what ORT recommends for transformer encoders."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.passes.base import Pass, PassConfig, PassContext
from edgeopt.passes.onnx.common import save_onnx
from edgeopt.passes.registry import register_pass

TRANSFORMER_OPS = ("LayerNormalization", "Softmax")  # a graph with neither has nothing this pass fuses


class FuseTransformerConfig(PassConfig):
    """Which of ORT's fusion recipes to apply; heads and hidden size 0 = detect from the graph."""

    model_type: Literal["bert", "gpt2", "vit", "clip"] = "bert"
    num_heads: int = Field(0, ge=0)
    hidden_size: int = Field(0, ge=0)


@register_pass
class FuseTransformer(Pass):
    """ONNX -> ONNX with ORT transformer fusions (ORT contrib ops: runs on ONNX Runtime only)."""

    name = "fuse_transformer"
    version = "1"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.ONNX
    Config = FuseTransformerConfig
    targets = ("ort-cpu",)
    check_tolerance = (1e-3, 0.9999)
    tools = ("onnx", "onnxruntime")

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        if not isinstance(model, OnnxModel):
            raise TypeError("fuse_transformer takes an OnnxModel")
        cfg: FuseTransformerConfig = self.config  # type: ignore[assignment]
        ops = {n.op_type for n in model.proto.graph.node}
        if not ops & set(TRANSFORMER_OPS):
            ctx.shared.setdefault("notes", []).append(
                "fuse_transformer: no LayerNormalization or Softmax in the graph; nothing to fuse, model unchanged")
            save_onnx(model.proto, out_path)
            return OnnxModel.from_file(out_path)
        from onnxruntime.transformers.optimizer import optimize_model

        # The optimizer logs every fusion attempt at INFO/WARNING; its summary goes into the notes instead.
        quiet = [logging.getLogger(n) for n in ("onnxruntime.transformers", "fusion_base", "onnx_model")]
        levels = [lg.level for lg in quiet]
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        try:
            fused = optimize_model(model.proto, model_type=cfg.model_type, num_heads=cfg.num_heads,
                                   hidden_size=cfg.hidden_size, opt_level=0, use_gpu=False)
        finally:
            for lg, level in zip(quiet, levels, strict=True):
                lg.setLevel(level)
        stats = {k: v for k, v in sorted(fused.get_fused_operator_statistics().items()) if v}
        proto = fused.model
        proto.producer_name, proto.producer_version = "edgeopt", ""
        ctx.shared.setdefault("notes", []).append(
            "fuse_transformer: " + (", ".join(f"{v} {k}" for k, v in stats.items()) if stats else "nothing fused"))
        save_onnx(proto, out_path)
        return OnnxModel.from_file(out_path)
