"""Batch-dimension passes: make a fixed-batch-1 model take any batch (only where provably safe), or fix it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel, graph_inputs
from edgeopt.errors import EdgeoptError
from edgeopt.passes.base import Pass, PassConfig, PassContext
from edgeopt.passes.onnx.common import save_onnx
from edgeopt.passes.registry import register_pass

log = logging.getLogger(__name__)

_CHECK_BATCH = 3


class DynamicBatchConfig(PassConfig):
    """Name of the symbolic batch dim; what to do when the rewrite cannot be proven safe."""

    dim_name: str = "batch"
    on_unsafe: Literal["keep", "error"] = "keep"  # keep: return the model unchanged (recorded); error: fail the pass


class FixBatchConfig(PassConfig):
    """The batch size to fix."""

    batch: int = 1


def _set_dim0(vi: onnx.ValueInfoProto, value: int | str) -> None:
    dims = vi.type.tensor_type.shape.dim
    if not dims:
        return
    if isinstance(value, int):
        dims[0].Clear()
        dims[0].dim_value = value
    else:
        dims[0].Clear()
        dims[0].dim_param = value


def _first_dim(vi: onnx.ValueInfoProto) -> int | str | None:
    dims = vi.type.tensor_type.shape.dim
    if not dims:
        return None
    return dims[0].dim_value if dims[0].HasField("dim_value") else (dims[0].dim_param or None)


def _rewrite_reshapes(proto: onnx.ModelProto) -> int:
    """Reshape targets that hard-code the batch as 1 become 0 (copy the input's batch). Returns how many."""
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    changed = 0
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        init = inits[node.input[1]]
        shape = numpy_helper.to_array(init)
        if shape.ndim == 1 and shape.size >= 1 and shape[0] == 1:
            users = [n for n in graph.node if init.name in n.input]
            new = shape.copy()
            new[0] = 0
            if len(users) > 1:  # shared shape tensor: give this Reshape its own copy
                name = f"{init.name}__batch_{node.name or changed}"
                graph.initializer.append(numpy_helper.from_array(new, name))
                node.input[1] = name
            else:
                init.CopyFrom(numpy_helper.from_array(new, init.name))
            changed += 1
    return changed


def _batch_equivalent(original: bytes, rewritten: bytes, specs: list, seed: int) -> str | None:
    """None if the rewritten model on a batch of N equals the original run sample by sample; else why not."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    try:
        a = ort.InferenceSession(original, so, providers=["CPUExecutionProvider"])
        b = ort.InferenceSession(rewritten, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any failure means "not provably safe"
        return f"rewritten model does not load ({type(exc).__name__})"
    rng = np.random.default_rng(seed)
    feeds = {}
    for s in specs:
        shape = (_CHECK_BATCH, *[d if isinstance(d, int) else 1 for d in s.shape[1:]])
        feeds[s.name] = rng.standard_normal(shape).astype(s.dtype) if "float" in s.dtype else np.zeros(shape, s.dtype)
    try:
        batched = b.run(None, feeds)
    except Exception as exc:  # noqa: BLE001
        return f"rewritten model fails at batch {_CHECK_BATCH} ({type(exc).__name__})"
    for i in range(_CHECK_BATCH):
        single = a.run(None, {k: v[i : i + 1] for k, v in feeds.items()})
        for ref, got in zip(single, batched, strict=True):
            if got.shape[0] != _CHECK_BATCH or not np.allclose(ref[0], got[i], rtol=1e-5, atol=1e-5):
                return "outputs at batch > 1 differ from per-sample outputs (the batch dim is mixed with others)"
    return None


@register_pass
class DynamicBatch(Pass):
    """Turn a fixed batch of 1 into a symbolic batch, verified on a batch of 3 against per-sample runs."""

    name = "dynamic_batch"
    version = "1"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.ONNX
    Config = DynamicBatchConfig
    check_tolerance = (1e-5, 0.999999)
    tools = ("onnx", "onnxruntime")

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        if not isinstance(model, OnnxModel):
            raise TypeError("dynamic_batch takes an OnnxModel")
        cfg: DynamicBatchConfig = self.config  # type: ignore[assignment]
        proto = onnx.ModelProto()
        proto.CopyFrom(model.proto)
        inputs = graph_inputs(proto)
        firsts = [_first_dim(vi) for vi in list(inputs) + list(proto.graph.output)]
        reason = None
        if all(not isinstance(d, int) for d in firsts):
            reason = "already dynamic"
        elif any(d != 1 for d in firsts):
            reason = "leading dims are not all a fixed batch of 1"
        if reason is None:
            for vi in list(inputs) + list(proto.graph.output):
                _set_dim0(vi, cfg.dim_name)
            del proto.graph.value_info[:]
            _rewrite_reshapes(proto)
            reason = _batch_equivalent(
                model.proto.SerializeToString(), proto.SerializeToString(), model.input_specs(), ctx.seed
            )
            if reason is None:
                save_onnx(proto, out_path)
                return OnnxModel.from_file(out_path)
        if reason != "already dynamic":
            if cfg.on_unsafe == "error":
                raise EdgeoptError(f"cannot make the batch dynamic: {reason}", "keep the fixed batch")
            log.warning("dynamic_batch: kept the fixed batch (%s)", reason)
        ctx.shared.setdefault("notes", []).append(f"dynamic_batch: {reason}")
        save_onnx(model.proto, out_path)
        return OnnxModel.from_file(out_path)


@register_pass
class FixBatch(Pass):
    """Fix the batch dim of every input and output (targets that need static shapes)."""

    name = "fix_batch"
    version = "1"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.ONNX
    Config = FixBatchConfig
    check_tolerance = (1e-5, 0.999999)
    tools = ("onnx",)

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        if not isinstance(model, OnnxModel):
            raise TypeError("fix_batch takes an OnnxModel")
        cfg: FixBatchConfig = self.config  # type: ignore[assignment]
        proto = onnx.ModelProto()
        proto.CopyFrom(model.proto)
        for vi in list(graph_inputs(proto)) + list(proto.graph.output):
            if not isinstance(_first_dim(vi), int) or _first_dim(vi) == 0:
                _set_dim0(vi, cfg.batch)
        del proto.graph.value_info[:]
        proto = onnx.shape_inference.infer_shapes(proto)
        save_onnx(proto, out_path)
        return OnnxModel.from_file(out_path)
