"""fuse_transformer: onnxscript's and ORT's transformer fusions on real torch exports; the fused graph computes the same
and dynamic INT8 quantizes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgeopt.artifacts.base import TensorSpec
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.artifacts.torch_model import TorchModel
from edgeopt.data import load_data
from edgeopt.passes.base import PassContext
from edgeopt.passes.onnx.fuse_transformer import FuseTransformer
from edgeopt.passes.onnx.quantize_dynamic import QuantizeDynamic
from edgeopt.passes.torch.export_onnx import ExportOnnx


class _Block(nn.Module):
    """One post-norm encoder feed-forward block: LayerNorm(x + W2 gelu(W1 x + b1) + b2), BERT style."""

    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.f1, self.f2, self.ln = nn.Linear(d, 4 * d), nn.Linear(4 * d, d), nn.LayerNorm(d, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x + self.f2(nn.functional.gelu(self.f1(x))))


def _exported(tmp_path: Path) -> OnnxModel:
    torch.manual_seed(0)
    module = _Block().eval()
    src = TorchModel.from_module(module, [TensorSpec("x", (1, 16, 32), "float32")])
    out = ExportOnnx({}).run(src, PassContext(work_dir=tmp_path), tmp_path / "block.onnx")
    assert isinstance(out, OnnxModel)
    return out


def _run(model: OnnxModel, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def test_fuses_layernorm_and_gelu_and_computes_the_same(tmp_path: Path) -> None:
    model = _exported(tmp_path)
    ctx = PassContext(work_dir=tmp_path)
    fused = FuseTransformer({}).run(model, ctx, tmp_path / "fused.onnx")
    ops = fused.op_histogram()
    assert ops.get("SkipLayerNormalization", 0) + ops.get("LayerNormalization", 0) == 1
    assert ops.get("BiasGelu", 0) + ops.get("Gelu", 0) + ops.get("FastGelu", 0) == 1 and "Erf" not in ops
    assert any("fuse_transformer:" in n and "nothing" not in n for n in ctx.shared["notes"])
    x = np.random.default_rng(1).standard_normal((1, 16, 32)).astype(np.float32)
    np.testing.assert_allclose(_run(fused, x), _run(model, x), atol=1e-4)
    # Dynamic INT8 reads the fused graph (contrib ops) and stays close to float.
    ev = load_data({next(iter(s.name for s in model.input_specs())): np.repeat(x, 8, 0)}, model.input_specs())
    q = QuantizeDynamic({"speed_check": False, "metric": "cosine", "max_accuracy_drop": 1.0}).run(
        fused, PassContext(work_dir=tmp_path, eval_data=ev), tmp_path / "int8.onnx")
    assert "MatMul" not in q.op_histogram()
    got, ref = _run(q, x).ravel(), _run(model, x).ravel()
    assert float(got @ ref / np.linalg.norm(got) / np.linalg.norm(ref)) > 0.99


def test_a_conv_net_is_left_unchanged(tmp_path: Path, conv_onnx: Path) -> None:
    model = OnnxModel.from_file(conv_onnx)
    ctx = PassContext(work_dir=tmp_path)
    out = FuseTransformer({}).run(model, ctx, tmp_path / "same.onnx")
    assert onnx.load(str(out.path)).graph == model.proto.graph
    assert "nothing to fuse" in ctx.shared["notes"][0]


class _Attention(nn.Module):
    """BERT-style self-attention as Hugging Face writes it for PyTorch's SDPA: Q/K/V projections, heads split by
    view + transpose, an additive mask built from a 0/1 attention_mask input (finfo.min where masked)."""

    def __init__(self, d: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, self.heads, d // self.heads).transpose(1, 2)

        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        ctx = nn.functional.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)),
                                                         attn_mask=bias)
        return self.ln(x + self.o(ctx.transpose(1, 2).reshape(b, s, d)))


def test_sdpa_attention_becomes_multihead_attention_and_its_projections_int8(tmp_path: Path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    specs = [TensorSpec("x", (1, 16, 32), "float32"), TensorSpec("attention_mask", (1, 16), "int64")]
    src = TorchModel.from_module(_Attention().eval(), specs)
    model = ExportOnnx({}).run(src, PassContext(work_dir=tmp_path), tmp_path / "attn.onnx")
    assert isinstance(model, OnnxModel) and "Softmax" in model.op_histogram()
    ctx = PassContext(work_dir=tmp_path)
    fused = FuseTransformer({}).run(model, ctx, tmp_path / "fused.onnx")
    ops = fused.op_histogram()
    assert ops.get("MultiHeadAttention") == 1 and "Softmax" not in ops, ops
    assert "MultiHeadAttention" in ctx.shared["notes"][-1]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 16, 32)).astype(np.float32)
    mask = np.ones((1, 16), np.int64)
    mask[0, 11:] = 0  # padding: the last five keys are masked

    def run(m: OnnxModel, m_: np.ndarray = mask) -> np.ndarray:
        sess = ort.InferenceSession(str(m.path), providers=["CPUExecutionProvider"])
        return sess.run(None, {"x": x, "attention_mask": m_})[0]

    np.testing.assert_allclose(run(fused), run(model), atol=1e-4)
    # The fused node still applies the mask: unmasking the padding changes the fused output as it changes the original.
    unmasked = np.ones_like(mask)
    assert np.abs(run(fused, unmasked) - run(fused)).max() > 1e-2
    np.testing.assert_allclose(run(fused, unmasked), run(model, unmasked), atol=1e-4)
    # Dynamic INT8 quantizes the Q/K/V and output projections that feed and follow MultiHeadAttention.
    ev = load_data({"x": np.repeat(x, 8, 0), "attention_mask": np.repeat(mask, 8, 0)}, model.input_specs())
    q = QuantizeDynamic({"speed_check": False, "metric": "cosine", "max_accuracy_drop": 1.0}).run(
        fused, PassContext(work_dir=tmp_path, eval_data=ev), tmp_path / "int8.onnx")
    q_ops = q.op_histogram()
    assert "MatMul" not in q_ops and q_ops.get("MultiHeadAttention") == 1, q_ops
    got, ref = run(q).ravel(), run(model).ravel()
    assert float(got @ ref / np.linalg.norm(got) / np.linalg.norm(ref)) > 0.99


def test_ort_optimizer_alone_fuses_and_leaves_the_input_untouched(tmp_path: Path) -> None:
    model = _exported(tmp_path)
    original = onnx.ModelProto()
    original.CopyFrom(model.proto)
    ctx = PassContext(work_dir=tmp_path)
    fused = FuseTransformer({"onnxscript": False}).run(model, ctx, tmp_path / "ort-only.onnx")
    assert model.proto == original  # ORT's optimizer works in place; the pass hands it a copy
    assert "Erf" not in fused.op_histogram()
    assert "ORT's optimizer fused" in ctx.shared["notes"][-1] and "onnxscript" not in ctx.shared["notes"][-1]
