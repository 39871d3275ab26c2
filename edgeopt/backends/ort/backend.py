"""ONNX Runtime backend: sessions with pinned threads and a chosen optimization level."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from edgeopt.artifacts.base import Artifact, ArtifactKind, TensorSpec
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.backends.base import Backend, BackendOptions, Runner, register_backend
from edgeopt.errors import ConfigError

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}

_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
OptLevel = Literal["disable", "basic", "extended", "all"]


# Intra-op threads spin-wait between the parallel parts of a run (waking a sleeping thread costs more than a short
# op). "always" is ONNX Runtime's default: the pool keeps spinning after a run returns, so when builds are timed
# interleaved in one process an idle session steals the cores of the running one (ResNet-18 INT8 vs FP32: 2.11x with
# p10-p90 0.96-4.36x). "off" never spins, which charges every op a thread wake-up (EfficientNet-Lite0 alone, 2 cores:
# FP32 3.44 ms, INT8 1.63 ms). "during_run" (the default) spins while a run is in flight and stops when it returns
# (session.force_spinning_stop): FP32 2.64 ms, INT8 1.24 ms, as fast as "always" (2.69, 1.22) without the stealing.
# Figures: benchmarks/RESULTS.md ("The machine"; benchmarks/ort_spinning.py, bench_int8.py --part resnet).
Spinning = Literal["during_run", "off", "always"]


class OrtOptions(BackendOptions):
    """ONNX Runtime session options edgeopt exposes."""

    intra_op_num_threads: int | None = None
    graph_optimization_level: OptLevel = "all"
    execution_mode: Literal["sequential", "parallel"] = "sequential"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    spinning: Spinning = "during_run"


def session_options(
    threads: int | None, level: OptLevel = "all", optimized_path: str | None = None,
    spinning: Spinning = "during_run",
) -> ort.SessionOptions:
    """SessionOptions with pinned threads (deterministic, comparable timings)."""
    so = ort.SessionOptions()
    if spinning == "off":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif spinning == "during_run":
        so.add_session_config_entry("session.force_spinning_stop", "1")
    so.graph_optimization_level = _LEVELS[level]
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    return so


#: ONNX Runtime's WeightBiasQuantization turns a float Conv bias behind dequantized inputs into int32 at scale
#: s_x * s_w, dividing in the model's float type. In an FP16-typed Q/DQ model (pass fp16_typed) the quotient overflows
#: FP16 for small scales and the bias becomes garbage, so such a model runs without it. TensorRT keeps the bias float.
FP16_UNSAFE_OPTIMIZERS = ("WeightBiasQuantization",)


def unsafe_optimizers(proto: Any) -> list[str]:
    """The ORT graph optimizers a model must run without (FP16_UNSAFE_OPTIMIZERS for an FP16-typed model)."""
    from edgeopt.passes.onnx.fp16_typed import is_fp16_typed

    return list(FP16_UNSAFE_OPTIMIZERS) if is_fp16_typed(proto) else []


class OrtRunner(Runner):
    """An ONNX Runtime inference session."""

    def __init__(self, model_path: str, options: OrtOptions, threads: int | None,
                 disabled_optimizers: list[str] | None = None) -> None:
        self.threads = threads or options.intra_op_num_threads
        so = session_options(self.threads, options.graph_optimization_level, spinning=options.spinning)
        so.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL if options.execution_mode == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        self.session = ort.InferenceSession(model_path, so, providers=list(options.providers),
                                            disabled_optimizers=disabled_optimizers or None)
        self.options = options
        self._inputs = [
            TensorSpec(
                i.name,
                tuple(d if isinstance(d, int) else (d or None) for d in i.shape),
                _ORT_TYPES.get(i.type, "float32"),
            )
            for i in self.session.get_inputs()
        ]
        first = self._inputs[0].shape[0] if self._inputs and self._inputs[0].shape else None
        self.max_batch = first if isinstance(first, int) else None

    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        feed = {s.name: np.ascontiguousarray(inputs[s.name], dtype=s.dtype) for s in self._inputs}
        return list(self.session.run(None, feed))

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": "onnxruntime",
            "version": ort.__version__,
            "providers": self.session.get_providers(),
            "threads": self.threads,
            "graph_optimization_level": self.options.graph_optimization_level,
            "spinning": self.options.spinning,
        }


@register_backend
class OrtBackend(Backend):
    """ONNX Runtime on the CPU."""

    name = "ort"
    artifact_kind = ArtifactKind.ONNX
    Options = OrtOptions

    def load(self, artifact: Artifact, threads: int | None = None) -> Runner:
        if not isinstance(artifact, OnnxModel) or artifact.path is None:
            raise TypeError("the ort backend runs ONNX files")
        assert isinstance(self.options, OrtOptions)
        return OrtRunner(str(artifact.path), self.options, threads, unsafe_optimizers(artifact.proto))

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        available = ort.get_available_providers()
        missing = [p for p in self.options.providers if p not in available]  # type: ignore[attr-defined]
        if missing:
            # ONNX Runtime would silently fall back to the CPU; timings would then be mislabelled.
            raise ConfigError(
                f"ONNX Runtime execution provider(s) {', '.join(missing)} not available in this install",
                f"use one of: {', '.join(available)}",
            )
