"""`edgeopt inspect`: what a model is (inputs, outputs, ops, parameters, size) and, per target, what it lacks."""

from __future__ import annotations

from typing import Any

import onnx

from edgeopt.artifacts.loading import load_model
from edgeopt.config import parse_input_shapes
from edgeopt.targets import get_target


def inspect_model(model: str, target: str | None = None, input_shapes: list[str] | None = None,
                  nodes: bool = False) -> dict[str, Any]:
    """Summary of a model; with a target, the backend's own check (op coverage, placement rules); with `nodes`, every
    node of an ONNX model by name and op type, in graph order (the names `exclude_nodes` options take)."""
    from edgeopt.artifacts.base import TensorSpec

    specs = None
    if input_shapes:
        specs = [TensorSpec(n or "input", tuple(d)) for n, d in parse_input_shapes(input_shapes).items()]
    art = load_model(model, specs)
    if hasattr(art, "summary"):
        info = art.summary()
    else:
        info = {
            "kind": art.kind.value,
            "path": str(art.path) if art.path else None,
            "sha256": art.sha256,
            "inputs": [s.to_dict() for s in art.input_specs()],
            "outputs": [s.to_dict() for s in art.output_specs()],
            "ops": art.op_histogram(),
            "parameters": getattr(art, "parameter_count", lambda: None)(),
            "size_bytes": art.size_bytes(),
        }
    if nodes:
        info["nodes"] = _node_list(art)
    if target is not None:
        t = get_target(target)
        backend = t.backend_instance()
        check = getattr(backend, "inspect", None)
        info["target"] = {"name": t.name, **(check(art) if check is not None else {"note": "no target-specific check"})}
    return info


def _node_list(art: Any) -> list[dict[str, str]]:
    """Name and op type of each node, unnamed nodes named as edgeopt's quantizers name them."""
    from edgeopt.artifacts.onnx_model import OnnxModel
    from edgeopt.errors import ConfigError
    from edgeopt.quant.graph import name_nodes

    if not isinstance(art, OnnxModel):
        raise ConfigError(f"--nodes lists the nodes of an ONNX model, and this is a {art.kind.value} model",
                          "pass an ONNX file: edgeopt compile writes each build under artifacts/ in its output "
                          "folder, and the FP32 (or FP16) build's node names are those its INT8 pass sees")
    proto = onnx.ModelProto()
    proto.CopyFrom(art.proto)
    name_nodes(proto)
    return [{"name": n.name, "op": n.op_type} for n in proto.graph.node]


def render_inspect(info: dict[str, Any]) -> str:
    """Human-readable form of `inspect_model`'s result."""
    lines = [f"{info.get('path') or '<module>'}  ({info['kind']}, sha256 {info['sha256'][:16]}…)"]
    if info.get("opset"):
        lines.append(f"opset: {info['opset']}")
    for io in ("inputs", "outputs"):
        for s in info.get(io) or []:
            dims = ",".join(str(d) if d is not None else "?" for d in s["shape"])
            lines.append(f"{io[:-1]:6s} {s['name']}: {s['dtype']}[{dims}]")
    if info.get("parameters") is not None:
        lines.append(f"parameters: {info['parameters']:,}")
    lines.append(f"size: {info['size_bytes'] / 1e6:.3f} MB")
    ops = info.get("ops") or {}
    lines.append("ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))))
    if "nodes" in info:
        lines.append(f"nodes ({len(info['nodes'])}, in graph order):")
        width = max((len(n["name"]) for n in info["nodes"]), default=0)
        lines.extend(f"  {n['name']:{width}s}  {n['op']}" for n in info["nodes"])
    tgt = info.get("target")
    if tgt:
        lines.append(f"target {tgt['name']}:")
        for k, v in tgt.items():
            if k == "name":
                continue
            if isinstance(v, list):
                lines.append(f"  {k}:" + ("" if v else " none"))
                lines.extend(f"    - {item}" for item in v)
            else:
                lines.append(f"  {k}: {v}")
    return "\n".join(lines)
