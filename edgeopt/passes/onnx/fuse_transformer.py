"""Transformer fusion for ONNX Runtime: LayerNorm, SkipLayerNorm, Gelu, BiasGelu and attention subgraphs become single
ORT contrib ops. Run before dynamic INT8: ORT's dynamic quantizer then quantizes the fused graph, which is what ORT
recommends for transformer encoders.

Two fusers run in turn:
1. onnxscript's ORT fusions (`onnxscript.rewriter.ort_fusions`), written for torch.onnx (dynamo) exports, the ones
   edgeopt makes: they recognise PyTorch's scaled_dot_product_attention with an additive mask and turn it into
   `MultiHeadAttention` (ORT's optimizer does not match that pattern). The packed-QKV `Attention` fusion is left out on
   purpose: ORT's dynamic quantizer cannot quantize an `Attention` node that takes an attention bias (the mask), so
   packing would leave the Q/K/V projections in float; with `MultiHeadAttention` they stay MatMuls that become int8.
2. ONNX Runtime's transformer optimizer (`onnxruntime.transformers`), which knows the patterns of older TorchScript
   exports and of hand-written ONNX files.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import Counter
from pathlib import Path
from typing import Literal

import onnx
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
    onnxscript: bool = True  # run onnxscript's ORT fusions (SDPA -> MultiHeadAttention) before ORT's optimizer


def onnxscript_fusions(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    """onnxscript's ORT fusions, minus the packed-QKV Attention (see the module docstring); returns counts by fusion."""
    import onnx_ir as ir
    import onnx_ir.passes.common as common_passes
    from onnxscript.optimizer import optimize
    from onnxscript.rewriter import rewrite
    from onnxscript.rewriter.ort_fusions import (
        ORT_PATTERN_REWRITE_RULES,
        bias_gelu,
        erfgelu,
        gelu,
        mha,
        mha_bias,
        mha_scale,
        sdpa,
        shape_optimization,
        skip_normalization,
    )

    model = ir.from_proto(proto)
    common_passes.ShapeInferencePass()(model)
    optimize(model)
    shape_optimization.rules.apply_to_model(model)
    optimize(model)
    steps = [
        ("Gelu (erf)", erfgelu.fuse_erfgelu, {}),
        ("SkipLayerNormalization", skip_normalization.fuse_skip_layer_normalization, {}),
        ("scaled dot-product attention", sdpa.fuse_sdpa, {"apply_shape_inference": True}),
        ("MultiHeadAttention", mha.fuse_mha1, {}),
        ("MultiHeadAttention", mha.fuse_mha2, {}),
        ("attention scale folded", mha_scale.fuse_mha_scale, {}),
        ("attention bias folded", mha_bias.fuse_mha_bias, {}),
        ("Gelu", gelu.fuse_gelu, {}),
        ("BiasGelu", bias_gelu.fuse_bias_gelu, {}),
    ]
    counts: Counter[str] = Counter()
    for name, fn, kw in steps:
        counts[name] += int(fn(model, **kw))
    optimize(model)  # inlines the intermediate SDPA functions no MultiHeadAttention consumed
    rewrite(model, ORT_PATTERN_REWRITE_RULES)
    common_passes.ShapeInferencePass()(model)
    return ir.to_proto(model), {k: v for k, v in counts.items() if v}


@register_pass
class FuseTransformer(Pass):
    """ONNX -> ONNX with ORT transformer fusions (ORT contrib ops: runs on ONNX Runtime only)."""

    name = "fuse_transformer"
    version = "3"
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

        proto, notes = onnx.ModelProto(), []
        proto.CopyFrom(model.proto)  # ORT's optimizer rewrites the proto it is given in place
        if cfg.onnxscript:
            proto, counts = onnxscript_fusions(proto)
            if counts:
                notes.append("onnxscript fused " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        # ORT's statistics count op types in the graph, so what onnxscript fused is subtracted.
        before = Counter(n.op_type for n in proto.graph.node)
        # The optimizer logs every fusion attempt (and prints shape-inference failures); its summary goes into the
        # notes instead.
        logging.disable(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                fused = optimize_model(proto, model_type=cfg.model_type, num_heads=cfg.num_heads,
                                       hidden_size=cfg.hidden_size, opt_level=0, use_gpu=False)
        finally:
            logging.disable(logging.NOTSET)
        stats = {k: v - before[k] for k, v in sorted(fused.get_fused_operator_statistics().items()) if v > before[k]}
        proto = fused.model
        proto.producer_name, proto.producer_version = "edgeopt", ""
        if stats:
            notes.append("ORT's optimizer fused " + ", ".join(f"{v} {k}" for k, v in stats.items()))
        ctx.shared.setdefault("notes", []).append("fuse_transformer: " + ("; ".join(notes) or "nothing fused"))
        save_onnx(proto, out_path)
        return OnnxModel.from_file(out_path)
