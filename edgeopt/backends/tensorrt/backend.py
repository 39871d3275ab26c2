"""TensorRT backend: the target's artifact is TensorRT-ready ONNX; the engine is built where TensorRT and an NVIDIA
GPU exist, and elsewhere the variant reports `engine not built: <why>` with the trtexec command that builds it."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from edgeopt.artifacts.base import Artifact, ArtifactKind, TensorSpec
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.backends.base import Backend, BackendOptions, Deployment, Runner, register_backend
from edgeopt.backends.tensorrt.artifact import EngineHost, TrtEngine, manifest_path
from edgeopt.backends.tensorrt.build import (
    BuildPlan,
    EngineBuildError,
    input_problems,
    profile_shapes,
    resolve_precision,
    trtexec_command,
)
from edgeopt.backends.tensorrt.parser_ops import describe_unparsed, unparsed_nodes
from edgeopt.backends.tensorrt.placement import check_placement, is_quantized, summarize
from edgeopt.cache import default_cache_dir
from edgeopt.errors import BackendUnavailable, ConfigError, EdgeoptError
from edgeopt.fileio import canonical_json, sha256_bytes, write_text_atomic
from edgeopt.passes.onnx.fp16_typed import is_fp16_typed

Range = tuple[int, int, int]
log = logging.getLogger(__name__)


class TensorrtOptions(BackendOptions):
    """Engine build options: builder precision, workspace, optimization-profile ranges, timing cache, GPU index."""

    precision: Literal["fp16", "int8", "best"] | None = Field(
        None, description="None: INT8+FP16 for a Q/DQ model, FP16 otherwise"
    )
    workspace_mb: int = Field(1024, ge=1)
    batch: Range = Field((1, 1, 32), description="min/opt/max of a dynamic leading (batch) dim")
    dim_ranges: dict[str, Range] = Field(default_factory=dict, description="min/opt/max per named dynamic dim")
    timing_cache: bool = True
    device: int = Field(0, ge=0)
    strongly_typed: bool = Field(
        False, description="precision from the ONNX tensor types, no FP16/INT8 builder flags (TensorRT 11, and "
                           "TensorRT 10 with --stronglyTyped); the artifact must be FP16-typed (pass fp16_typed)")

    @model_validator(mode="after")
    def _ordered(self) -> TensorrtOptions:
        for name, (lo, opt, hi) in [("batch", self.batch), *sorted(self.dim_ranges.items())]:
            if not 1 <= lo <= opt <= hi:
                raise ValueError(f"range of {name} must satisfy 1 <= min <= opt <= max, got {[lo, opt, hi]}")
        return self


def _unavailable(strongly_typed: bool) -> str | None:
    """None when TensorRT (a version that builds this way) and a GPU are here, else why not."""
    from edgeopt.backends.tensorrt.trt_import import import_tensorrt, unsupported_version

    trt = import_tensorrt()
    if trt is None:
        return "TensorRT not installed"
    wrong = unsupported_version(str(trt.__version__), strongly_typed)
    if wrong is not None:
        return wrong
    import torch

    if not torch.cuda.is_available():
        return "no NVIDIA GPU (torch sees no CUDA device)"
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


@register_backend
class TensorrtBackend(Backend):
    """NVIDIA TensorRT on a GPU: FP16 engines, INT8 by explicit Q/DQ quantization; weakly typed (TensorRT 10's
    FP16/INT8 builder flags over an FP32 ONNX) or strongly typed (precision from an FP16-typed ONNX: TensorRT 10/11)."""

    name = "tensorrt"
    artifact_kind = ArtifactKind.ONNX
    Options = TensorrtOptions
    extra = "tensorrt"

    @property
    def opts(self) -> TensorrtOptions:
        return self.options  # type: ignore[return-value]

    @classmethod
    def availability(cls) -> str | None:
        return _unavailable(strongly_typed=False)

    def why_not_here(self) -> str | None:
        return _unavailable(self.opts.strongly_typed)

    def check(self, inputs: list[TensorSpec]) -> list[str]:
        return input_problems(inputs, self.opts.batch, self.opts.dim_ranges)

    def plan(self, model: OnnxModel) -> BuildPlan:
        """The build plan of a TensorRT-ready ONNX model under these options."""
        typed = is_fp16_typed(model.proto) if self.opts.strongly_typed else None
        int8, fp16 = resolve_precision(self.opts.precision, is_quantized(model.proto), typed)
        profiles = profile_shapes(model.input_specs(), self.opts.batch, self.opts.dim_ranges)
        return BuildPlan(int8=int8, fp16=fp16, workspace_mb=self.opts.workspace_mb, profiles=profiles,
                         strongly_typed=self.opts.strongly_typed)

    def timing_cache_path(self, host: EngineHost) -> Path | None:
        """The timing cache in edgeopt's cache folder, one per TensorRT version and GPU."""
        if not self.opts.timing_cache:
            return None
        name = f"timing-{_slug(str(host.tensorrt))}-{_slug(str(host.gpu))}-sm{host.compute_capability}.cache"
        return default_cache_dir() / "tensorrt" / name

    def inspect(self, artifact: Artifact) -> dict[str, Any]:
        """Placement violations (`edgeopt inspect MODEL --target trt-gpu`), the build plan, and whether it runs here."""
        if not isinstance(artifact, OnnxModel):
            return {"note": "TensorRT checks apply to ONNX models"}
        violations = check_placement(artifact.proto)
        counts = summarize(violations)
        unparsed = unparsed_nodes(artifact.proto)
        info: dict[str, Any] = {
            "quantized": "yes (Q/DQ: explicit INT8)" if is_quantized(artifact.proto) else "no (FP16 build)",
            "placement": f"{counts['errors']} errors, {counts['warnings']} warnings" if violations else "ok",
            "violations": [str(v) for v in violations],
            "ops TensorRT's ONNX parser lacks": unparsed,
        }
        problems = self.check(artifact.input_specs())
        if problems:
            info["profile problems"] = problems
        else:
            try:
                info["builder precision"] = self.plan(artifact).precision
            except ConfigError as exc:
                info["builder precision"] = f"none: {exc}"
        why = self.why_not_here()
        info["engine build here"] = "yes" if why is None else f"no ({why})"
        return info

    def finalize(self, artifact: Artifact, dest: Path) -> Deployment:
        """Refuse what TensorRT would not build fast; write the trtexec command; build the engine where possible."""
        if not isinstance(artifact, OnnxModel):
            raise TypeError("the tensorrt backend finalizes ONNX artifacts")
        violations = check_placement(artifact.proto)
        fields: dict[str, Any] = {"placement_violations": [str(v) for v in violations]}
        unparsed = unparsed_nodes(artifact.proto)
        if unparsed:  # where TensorRT is installed its parser's own errors follow; elsewhere this is all there is
            said = describe_unparsed(unparsed)
            fields.update(parser_unsupported=unparsed, notes=[said])
            log.warning("%s", said)
        errors = [v for v in violations if v.severity == "error"]
        if errors:
            first = errors[0]
            return Deployment(
                status=f"failed: not TensorRT-ready ({len(errors)} Q/DQ placement errors; first: {first.rule} at "
                       f"{first.op_type} '{first.node}': {first.detail}); fix: {first.fix}",
                fields=fields,
            )
        try:
            plan = self.plan(artifact)
        except ConfigError as exc:
            return Deployment(status=f"failed: {exc}", fields=fields)
        engine = dest.with_suffix(".engine")
        folder = dest.parent.name
        command = trtexec_command(f"{folder}/{dest.name}", f"{folder}/{engine.name}", plan,
                                  f"{folder}/tensorrt.timing.cache" if self.opts.timing_cache else None)
        script = dest.with_suffix(".trtexec.sh")
        write_text_atomic(script, "#!/bin/sh\n# Builds the TensorRT engine of this variant (written by edgeopt) with "
                                  f"TensorRT {plan.trtexec_versions}'s trtexec; run it on the machine with the target "
                                  "GPU.\n"
                                  f'cd "$(dirname "$0")/.." || exit 1\nexec {command}\n')
        script.chmod(0o755)
        fields.update(build_command=command, build_script=f"{folder}/{script.name}", trt_precision=plan.precision,
                      engine=None)
        why = self.why_not_here()
        if why is not None:
            fields["notes"] = [*fields.get("notes", []), f"engine not built ({why}): on the machine with the target "
                               f"GPU and TensorRT {plan.trtexec_versions}, run {folder}/{script.name}, which is "
                               f"`{command}`"]
            return Deployment(status=f"engine not built: {why}", fields=fields)
        try:
            built = self.build(artifact, plan, engine)
        except EdgeoptError as exc:
            return Deployment(status=f"failed: {exc}", fields=fields)
        fields.update(engine=f"{folder}/{engine.name}", engine_manifest=built.manifest.to_dict() if built.manifest
                      else None)
        return Deployment(fields=fields, artifact=built)

    def build(self, model: OnnxModel, plan: BuildPlan, engine_path: Path) -> TrtEngine:
        """Build (or reuse, when its manifest matches this machine and inputs) the engine at `engine_path`."""
        from edgeopt.backends.tensorrt.build import build_engine

        if model.path is None:
            raise EngineBuildError("the model has no file to build from", "save it first")
        host = EngineHost.current(self.opts.device)
        if engine_path.is_file() and manifest_path(engine_path).is_file():
            existing = TrtEngine.from_file(engine_path)
            m = existing.manifest
            if m is not None and m.onnx_sha256 == model.sha256 and m.precision == plan.precision \
                    and m.profiles == plan.to_dict()["profiles"] and m.host == host:
                return existing
        return build_engine(model.path, model.sha256, plan, engine_path, self.timing_cache_path(host),
                            self.opts.device)

    def load(self, artifact: Artifact, threads: int | None = None) -> Runner:
        """Run an engine (refused on another GPU or TensorRT version); an ONNX model is built through the cache."""
        from edgeopt.backends.tensorrt.runtime import TrtRunner

        if isinstance(artifact, OnnxModel):
            host = EngineHost.current(self.opts.device)
            self._require_here()
            plan = self.plan(artifact)
            key = sha256_bytes(canonical_json({"onnx": artifact.sha256, "plan": plan.to_dict(),
                                               "host": host.describe()}).encode())
            artifact = self.build(artifact, plan, default_cache_dir() / "tensorrt" / "engines" / f"{key}.engine")
        if not isinstance(artifact, TrtEngine):
            raise TypeError("the tensorrt backend runs TensorRT engines or TensorRT-ready ONNX")
        artifact.check_runs_on(EngineHost.current(self.opts.device))
        self._require_here()
        return TrtRunner(artifact, self.opts.device)

    def _require_here(self) -> None:
        why = self.why_not_here()
        if why == "TensorRT not installed":
            raise BackendUnavailable("TensorRT", self.extra)
        from edgeopt.backends.tensorrt.trt_import import INSTALL_HINT

        if why is not None and why.endswith(f" ({INSTALL_HINT})"):  # another TensorRT version: the hint is the fix
            raise EdgeoptError(f"cannot run TensorRT here: {why.removesuffix(f' ({INSTALL_HINT})')}", INSTALL_HINT)
        if why is not None:
            raise EdgeoptError(f"cannot run TensorRT here: {why}", "run on a machine with an NVIDIA GPU and CUDA")
