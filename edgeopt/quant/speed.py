"""Speed awareness: time INT8 builds against FP32 interleaved, and explain an INT8 build that is not faster."""

from __future__ import annotations

import collections
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeopt.evaluate.latency import LatencyResult, time_interleaved
from edgeopt.evaluate.machine import machine_info
from edgeopt.quant.graph import COMPUTE_OPS, is_depthwise
from edgeopt.quant.session import feeds, ort_session

FLOAT_BASELINE = "fp32"
TINY_MODEL_MS = 0.2
_FLOAT_KERNELS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "FusedConv", "FusedGemm", "FusedMatMul")


def time_builds(
    models: dict[str, onnx.ModelProto], inputs: dict[str, np.ndarray], threads: int | None = None,
    iters: int = 30, warmup: int = 5, max_seconds: float | None = 20.0, seed: int = 0,
) -> LatencyResult:
    """Median latencies of several builds timed in one interleaved run; speed-ups against 'fp32'.

    Sessions spin-wait only while a run is in flight, as the ort backend's sessions do (edgeopt.backends.ort.backend,
    `spinning`): an idle session's pool spinning after its run would steal the core the next session needs.
    """
    fns = {}
    for name, model in models.items():
        session = ort_session(model, threads)
        feed = feeds(session, inputs)
        fns[name] = lambda s=session, f=feed: s.run(None, f)
    baseline = FLOAT_BASELINE if FLOAT_BASELINE in models else None
    return time_interleaved(fns, iters=iters, warmup=warmup, baseline=baseline, seed=seed, max_seconds=max_seconds)


@dataclass
class RuntimeGraph:
    """What ONNX Runtime runs after its own optimizations: op counts and the DequantizeLinear nodes left unfused."""

    ops: dict[str, int]
    unfused_dq: int = 0
    unfused_consumers: dict[str, int] = field(default_factory=dict)
    float_kernels: int = 0


def runtime_graph(model: onnx.ModelProto, work_dir: Path | None = None) -> RuntimeGraph:
    """Optimize `model` the way a session does (level 'all') and read what remains."""
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        path = Path(tmp) / "runtime.onnx"
        ort_session(model, 1, "all", optimized_path=str(path))
        optimized = onnx.load(str(path))
    g = optimized.graph
    ops = collections.Counter(n.op_type for n in g.node)
    consumers: dict[str, list[onnx.NodeProto]] = collections.defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
    unfused = collections.Counter()
    dq_left = 0
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            continue
        readers = [c.op_type for c in consumers.get(n.output[0], []) if c.op_type != "QuantizeLinear"]
        if readers:
            dq_left += 1
            unfused.update(readers)
    floats = sum(ops.get(k, 0) for k in _FLOAT_KERNELS) + sum(v for k, v in ops.items() if k.startswith("Nchwc"))
    return RuntimeGraph(dict(sorted(ops.items())), dq_left, dict(sorted(unfused.items())), floats)


def quantized_depthwise(float_model: onnx.ModelProto, float_nodes: list[str]) -> list[str]:
    """Depthwise convs of the float model that the INT8 build quantizes."""
    floats = set(float_nodes)
    return sorted(n.name for n in float_model.graph.node if is_depthwise(float_model.graph, n) and n.name not in floats)


def _names(items: list[str], limit: int = 5) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def diagnose(
    float_model: onnx.ModelProto, int8_model: onnx.ModelProto, float_nodes: list[str], speedup: float,
    fp32_ms: float, work_dir: Path | None = None, machine: dict[str, Any] | None = None,
) -> tuple[list[str], RuntimeGraph]:
    """Why an INT8 build is not faster than FP32: one sentence per finding, plus the runtime graph read."""
    machine = machine or machine_info()
    verdict = "slower" if speedup < 1 else "no gain"
    found = [f"INT8 runs at {speedup:.2f}x the speed of FP32 on this machine ({verdict})"]
    compute = [n.name for n in float_model.graph.node if n.op_type in COMPUTE_OPS]
    if float_nodes:
        found.append(f"{len(float_nodes)} of {len(compute)} compute nodes stay float: {_names(float_nodes)}")
    rt = runtime_graph(int8_model, work_dir)
    if rt.unfused_dq:
        readers = ", ".join(f"{k} x{v}" for k, v in rt.unfused_consumers.items())
        found.append(f"{rt.unfused_dq} DequantizeLinear nodes ONNX Runtime did not fuse into int8 kernels "
                     f"(they feed float {readers}): each costs a conversion")
    dw = quantized_depthwise(float_model, float_nodes)
    if dw:
        found.append(f"{len(dw)} depthwise convs run as int8 QLinearConv; ONNX Runtime's int8 depthwise kernels on "
                     "x86 are often slower than its float NCHWc ones")
    if machine.get("arch") in ("x86_64", "AMD64") and not machine.get("int8_dot_product"):
        found.append("this CPU has no VNNI (AVX512-VNNI / AVX-VNNI) int8 dot-product instructions, so int8 matrix "
                     "products gain little over float")
    if fp32_ms < TINY_MODEL_MS:
        found.append(f"the model is tiny ({fp32_ms:.3f} ms in FP32): fixed per-op costs of quantize/dequantize "
                     "outweigh the int8 arithmetic saved")
    return found, rt
