"""Engine builds: the build plan (precision flags or strong typing, optimization profile, workspace), the equivalent
trtexec command, and the build itself through the TensorRT Python API (imported only here, only when called)."""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeopt.artifacts.base import TensorSpec
from edgeopt.backends.tensorrt.artifact import EngineHost, EngineManifest, TrtEngine, manifest_path
from edgeopt.backends.tensorrt.trt_import import INSTALL_HINT
from edgeopt.errors import ConfigError, EdgeoptError
from edgeopt.fileio import sha256_file, write_bytes_atomic

log = logging.getLogger(__name__)

Shape = tuple[int, ...]


class EngineBuildError(EdgeoptError):
    """TensorRT could not parse or build the model."""


@dataclass(frozen=True)
class BuildPlan:
    """Everything that decides an engine besides the ONNX bytes and the machine."""

    int8: bool
    fp16: bool
    workspace_mb: int
    profiles: dict[str, tuple[Shape, Shape, Shape]] = field(default_factory=dict)  # dynamic inputs only
    #: precision from the ONNX tensor types (no builder flags): int8/fp16 then say what those types are
    strongly_typed: bool = False

    @property
    def precision(self) -> str:
        """'int8+fp16', 'int8', 'fp16' or 'fp32': the builder flags, or for a strongly typed build the types the
        ONNX carries, with ' (strongly typed)'."""
        flags = "+".join(p for p, on in (("int8", self.int8), ("fp16", self.fp16)) if on) or "fp32"
        return f"{flags} (strongly typed)" if self.strongly_typed else flags

    @property
    def trtexec_versions(self) -> str:
        """The TensorRT versions whose trtexec builds this plan's command."""
        return "10 or 11" if self.strongly_typed else "10"

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "workspace_mb": self.workspace_mb,
                "profiles": {k: [list(s) for s in v] for k, v in sorted(self.profiles.items())}}


def resolve_precision(requested: str | None, quantized: bool, fp16_typed: bool | None = None) -> tuple[bool, bool]:
    """(int8, fp16) builder flags for a model with or without Q/DQ; ConfigError where they cannot match.
    `fp16_typed`: None for a weakly typed build; for a strongly typed one, whether the ONNX carries FP16 types
    (the build then has no flags: the pair says what the types give)."""
    if requested == "int8" and not quantized:
        raise ConfigError(
            "precision int8 needs a model with Q/DQ nodes (TensorRT explicit quantization)",
            "use the int8 variant (pass qdq_tensorrt, with --calibration) or precision fp16",
        )
    if requested == "fp16" and quantized:
        raise ConfigError(
            "precision fp16 cannot build a model that carries Q/DQ (INT8) nodes",
            "use precision best, or build the fp16 variant from the float model",
        )
    if fp16_typed is not None:
        if not fp16_typed and requested != "int8":
            raise ConfigError(
                "a strongly typed TensorRT build takes its precision from the ONNX types, and this model is "
                "FP32-typed: the engine would compute in FP32",
                "add the pass fp16_typed after the others (target trt-gpu-typed does), or use target trt-gpu",
            )
        return quantized, fp16_typed
    if requested in (None, "best"):
        return quantized, True  # Q/DQ layers in INT8, everything left in float in FP16
    return requested == "int8", requested == "fp16"


def input_problems(specs: list[TensorSpec], batch: Shape, dim_ranges: dict[str, Shape]) -> list[str]:
    """Dynamic dims an optimization profile cannot cover: any but the leading (batch) dim without a declared range."""
    problems = []
    for spec in specs:
        for i, d in enumerate(spec.shape):
            if i == 0 or (isinstance(d, int) and d > 0):
                continue
            if isinstance(d, str) and d in dim_ranges:
                continue
            label = f"'{d}'" if isinstance(d, str) else "(unnamed)"
            problems.append(
                f"input '{spec.name}' has dynamic dimension {i} {label} without a declared range; TensorRT needs "
                f"min/opt/max for it: add `dim_ranges: {{{d if isinstance(d, str) else 'NAME'}: [min, opt, max]}}` "
                "to the options of a copy of targets/trt-gpu.yaml (pass it as --target FILE.yaml)"
            )
    return problems


def profile_shapes(
    specs: list[TensorSpec], batch: Shape, dim_ranges: dict[str, Shape]
) -> dict[str, tuple[Shape, Shape, Shape]]:
    """min/opt/max shapes for every input with a dynamic dim (static inputs need no profile)."""
    problems = input_problems(specs, batch, dim_ranges)
    if problems:
        raise ConfigError(problems[0], "declare the range in the target options")
    out: dict[str, tuple[Shape, Shape, Shape]] = {}
    for spec in specs:
        if spec.is_static:
            continue
        dims: list[Shape] = []
        for d in spec.shape:
            if isinstance(d, int) and d > 0:
                dims.append((d, d, d))
            elif isinstance(d, str) and d in dim_ranges:
                dims.append(tuple(dim_ranges[d]))  # type: ignore[arg-type]
            else:
                dims.append(tuple(batch))  # the leading dim (checked above)
        out[spec.name] = (tuple(x[0] for x in dims), tuple(x[1] for x in dims), tuple(x[2] for x in dims))
    return out


def _shape_arg(profiles: dict[str, tuple[Shape, Shape, Shape]], which: int) -> str:
    parts = []
    for name, shapes in sorted(profiles.items()):
        label = f"'{name}'" if any(c in name for c in ":,'") else name
        parts.append(f"{label}:" + "x".join(str(d) for d in shapes[which]))
    return ",".join(parts)


def trtexec_command(onnx: str, engine: str, plan: BuildPlan, timing_cache: str | None = None) -> str:
    """The trtexec command line that builds the same engine as `build_engine` with `plan`: precision flags for
    TensorRT 10's weakly typed build, `--stronglyTyped` (TensorRT 10; the default on TensorRT 11) otherwise."""
    args = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}"]
    if plan.strongly_typed:
        args.append("--stronglyTyped")
    else:
        args += ["--int8"] if plan.int8 else []
        args += ["--fp16"] if plan.fp16 else []
    args.append(f"--memPoolSize=workspace:{plan.workspace_mb}M")
    if plan.profiles:
        args += [f"--minShapes={_shape_arg(plan.profiles, 0)}", f"--optShapes={_shape_arg(plan.profiles, 1)}",
                 f"--maxShapes={_shape_arg(plan.profiles, 2)}"]
    if timing_cache:
        args.append(f"--timingCacheFile={timing_cache}")
    args.append("--skipInference")
    return shlex.join(args)


def _parser_errors(parser: Any) -> list[str]:
    """TensorRT ONNX parser errors, each naming the node (index, name, op) it happened at."""
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        where = []
        for attr, fmt in (("node", "node {}"), ("node_name", "'{}'"), ("node_operator", "({})")):
            value = getattr(err, attr, None)
            value = value() if callable(value) else value
            if value not in (None, "", -1):
                where.append(fmt.format(value))
        out.append(f"{' '.join(where) or 'model'}: {err.desc()}")
    return out


def build_engine(
    onnx_path: Path, onnx_sha256: str, plan: BuildPlan, engine_path: Path, timing_cache: Path | None,
    device: int = 0,
) -> TrtEngine:
    """Parse and build with the TensorRT Python API; write the engine and its manifest atomically."""
    import tensorrt as trt
    import torch

    torch.cuda.set_device(device)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Networks are always explicit-batch (TensorRT 10); strongly typed on request (always, on TensorRT 11).
    typed = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(typed)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = _parser_errors(parser)
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path.name}: " + "; ".join(errors[:5]),
                               "run `edgeopt inspect MODEL --target trt-gpu` and fix the named nodes")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mb << 20)
    for wanted, flag in ((plan.fp16, "FP16"), (plan.int8, "INT8")):
        if wanted and not plan.strongly_typed:
            if not hasattr(trt.BuilderFlag, flag):
                raise EngineBuildError(f"TensorRT {trt.__version__} has no {flag} builder flag (strongly typed only)",
                                       f"use --target trt-gpu-typed, or {INSTALL_HINT}")
            config.set_flag(getattr(trt.BuilderFlag, flag))
    if plan.profiles:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in plan.profiles.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    if timing_cache is not None:
        blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(blob), ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT could not build an engine for {onnx_path.name} (see its log above)",
                               "lower the optimization profile's max shapes or raise workspace_mb")
    write_bytes_atomic(engine_path, bytes(serialized))
    if timing_cache is not None:
        write_bytes_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    host = EngineHost.current(device)
    manifest = EngineManifest(
        tensorrt=str(host.tensorrt), gpu=str(host.gpu), compute_capability=str(host.compute_capability),
        engine_sha256=sha256_file(engine_path), onnx_sha256=onnx_sha256, precision=plan.precision,
        profiles=plan.to_dict()["profiles"], workspace_mb=plan.workspace_mb,
    )
    manifest.write(manifest_path(engine_path))
    log.info("built %s (%s) for %s", engine_path.name, plan.precision, host.describe())
    return TrtEngine.from_file(engine_path)
