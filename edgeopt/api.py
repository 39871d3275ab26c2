"""The Python API: `compile` a model for targets, verified and measured; the CLI calls the same function."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.artifacts.base import Artifact, ArtifactKind, TensorSpec
from edgeopt.artifacts.loading import load_model
from edgeopt.cache import Cache
from edgeopt.config import CompileConfig
from edgeopt.errors import ConfigError, EdgeoptError, PipelineError
from edgeopt.fileio import copy_atomic, ensure_writable_dir
from edgeopt.passes.base import PassContext
from edgeopt.passes.registry import REGISTRY
from edgeopt.pipeline import Pipeline, PipelineResult
from edgeopt.progress import Progress
from edgeopt.quant.record import write_build_files
from edgeopt.targets import Target, VariantSpec, get_target

log = logging.getLogger(__name__)


@dataclass
class PlannedVariant:
    """A variant to build: its target, spec and the full pass chain from the input model."""

    target: Target
    spec: VariantSpec
    pipeline: Pipeline

    @property
    def name(self) -> str:
        return f"{self.target.name}/{self.spec.name}"


@dataclass
class BuiltVariant:
    """A variant after its pipeline ran (or failed)."""

    planned: PlannedVariant
    result: PipelineResult | None
    artifact_path: Path | None
    status: str
    extra: dict[str, Any] = field(default_factory=dict)  # backend report fields (Backend.finalize)
    runnable: Artifact | None = None  # what the backend runs when it is not the pass output (e.g. an engine)


@dataclass
class CompileResult:
    """What `compile` returns: the plan, the built variants, the report dict and where things were written."""

    config: CompileConfig
    plan: list[PlannedVariant]
    variants: list[BuiltVariant] = field(default_factory=list)
    report: dict[str, Any] | None = None
    out: Path | None = None

    @property
    def artifacts(self) -> dict[str, Path]:
        return {v.planned.name: v.artifact_path for v in self.variants if v.artifact_path is not None}


def _input_specs(cfg: CompileConfig, example_inputs: Any) -> list[TensorSpec] | None:
    """Input specs from example tensors or --input-shape; the batch dim stays dynamic for export."""
    specs: list[TensorSpec] = []
    if example_inputs is not None:
        tensors = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
        if isinstance(example_inputs, dict):
            tensors = tuple(example_inputs.values())
            names = list(example_inputs)
        else:
            names = ["input"] if len(tensors) == 1 else [f"input_{i}" for i in range(len(tensors))]
        for name, t in zip(names, tensors, strict=True):
            dtype = str(getattr(t, "dtype", "float32")).replace("torch.", "")
            specs.append(TensorSpec(name, ("batch", *tuple(t.shape)[1:]), dtype))
        return specs
    if cfg.input_shapes:
        for name, dims in cfg.input_shapes.items():
            shape = tuple("batch" if i == 0 and isinstance(d, int) and d <= 1 else d for i, d in enumerate(dims))
            specs.append(TensorSpec(name or "input", shape))
        return specs
    return None


def declared_input_specs(source: Artifact, shapes: dict[str, list[int | str]]) -> list[TensorSpec]:
    """The model's input specs with `--input-shape` declarations applied (fixes dynamic dims for static targets)."""
    specs = source.input_specs()
    if not shapes:
        return specs
    by_name = {s.name: s for s in specs}
    out = {s.name: s for s in specs}
    for name, dims in shapes.items():
        key = name or (specs[0].name if len(specs) == 1 else "")
        if key not in by_name:
            raise ConfigError(
                f"--input-shape names '{name}', which is not an input of the model (inputs: {', '.join(by_name)})",
                "use one of the model's input names",
            )
        old = by_name[key]
        if len(dims) != len(old.shape):
            raise ConfigError(
                f"--input-shape for '{key}' has {len(dims)} dims but the model input has {len(old.shape)} "
                f"({list(old.shape)})",
                "give one size per dimension",
            )
        for i, (want, have) in enumerate(zip(dims, old.shape, strict=True)):
            if isinstance(want, int) and isinstance(have, int) and have > 0 and want != have and i > 0:
                raise ConfigError(
                    f"--input-shape for '{key}' sets dim {i} to {want} but the model fixes it at {have}",
                    f"use {have}",
                )
        out[key] = TensorSpec(key, tuple(dims), old.dtype)
    return [out[s.name] for s in specs]


def _variants_for(target: Target, cfg: CompileConfig) -> list[VariantSpec]:
    specs = list(target.variants)
    if cfg.quantize != "none":
        from edgeopt.passes.onnx.quantize import quantized_variants

        specs += quantized_variants(target, cfg)
    specs += list(cfg.extra_variants)
    if cfg.variants is not None:
        specs = [s for s in specs if s.name in cfg.variants]
    return specs


def plan(cfg: CompileConfig, source: Artifact, ctx: PassContext) -> list[PlannedVariant]:
    """Build and validate every variant's pass chain; raise one PipelineError listing all problems."""
    problems: list[str] = []
    planned: list[PlannedVariant] = []
    for tname in cfg.target:
        try:
            target = get_target(tname)
        except EdgeoptError as exc:
            problems.append(str(exc))
            continue
        try:
            problems.extend(f"{target.name}: {p}" for p in target.backend_instance().check(ctx.input_specs))
        except EdgeoptError as exc:
            problems.append(f"{target.name}: {exc}")
        specs = _variants_for(target, cfg)
        if cfg.explore is not None:
            from edgeopt.explore import explore_variants

            specs = explore_variants(specs, cfg.explore, source.kind, ctx.train_data is not None)
        for spec in specs:
            steps: list[Any] = []
            try:
                variant = Pipeline(list(spec.passes))
                # Leading passes that keep the source kind (prune, distill on a torch model) run before conversion.
                lead = 0
                while lead < len(variant.passes) and variant.passes[lead].input_kind == source.kind:
                    if variant.passes[lead].output_kind != source.kind:
                        break
                    lead += 1
                steps.extend(variant.passes[:lead])
                rest = variant.passes[lead:]
                # A converter is prepended only when the variant's own passes do not start from the source kind
                # (e.g. tflite-cpu lists fix_batch, simplify, to_tflite: an ONNX source needs nothing more).
                first = rest[0].input_kind if rest else target.artifact
                if source.kind != target.artifact and first != source.kind:
                    conv = REGISTRY.converter(source.kind, first)
                    if conv is None and source.kind == ArtifactKind.TORCH:
                        conv = REGISTRY.converter(source.kind, ArtifactKind.ONNX)
                    if conv is not None:
                        steps.append(conv())
                steps.extend(rest)
                pipe = Pipeline(steps)
            except PipelineError as exc:
                problems.extend(f"{target.name}/{spec.name}: {p}" for p in exc.problems)
                continue
            problems.extend(f"{target.name}/{spec.name}: {p}" for p in pipe.validate(source.kind, ctx, target.name))
            if pipe.output_kind not in (None, target.artifact):
                ends = pipe.output_kind.value if pipe.output_kind else "?"
                problems.append(
                    f"{target.name}/{spec.name}: the chain ends in {ends} but target '{target.name}' runs "
                    f"{target.artifact.value}"
                )
            planned.append(PlannedVariant(target, spec, pipe))
    if problems:
        raise PipelineError(problems, "fix the listed problems (nothing was built)")
    return planned


def _load_data(spec: Any, source: Artifact, what: str, min_samples: int | None = None) -> Any:
    if spec is None:
        return None
    from edgeopt.data import load_data

    data = load_data(spec, source.input_specs())
    data.validate(source.input_specs(), min_samples=min_samples)
    return data


def compile(  # noqa: A001 - the verb users expect: edgeopt.compile(...)
    model: Any = None,
    target: str | list[str] = "ort-cpu",
    example_inputs: Any = None,
    data: Any = None,
    out: str | Path = "edgeopt-out",
    *,
    config: CompileConfig | None = None,
    dry_run: bool = False,
    progress: bool = False,
    **options: Any,
) -> CompileResult:
    """Compile `model` for `target`: build every variant, verify it against the original, time it, report."""
    if config is None:
        values: dict[str, Any] = {"target": target, "out": out, **options}  # Path or str (CompileConfig)
        values["model"] = model if isinstance(model, str | Path) else "<in-memory module>"
        if data is not None and isinstance(data, str | Path):
            values["data"] = data
        config = CompileConfig.build(values, source="compile() arguments")
        if data is not None and not isinstance(data, str | Path):
            options["_data_obj"] = data
    cfg = config
    prog = Progress(enabled=progress)
    source = load_model(
        model if model is not None and not isinstance(model, str | Path) else cfg.model,
        _input_specs(cfg, example_inputs),
    )
    eval_data = _load_data(options.get("_data_obj", cfg.data), source, "evaluation")
    if cfg.metric == "top1" and (eval_data is None or not eval_data.has_labels):
        raise ConfigError("--metric top1 needs labelled evaluation data, and "
                          + ("no --data was given" if eval_data is None else "the --data has no labels"),
                          "give --data with labels, or use --metric top1_agreement / cosine")
    calib = _load_data(cfg.calibration, source, "calibration", cfg.calibration_samples)
    train = _load_data(cfg.train, source, "training")
    cache = Cache(Path(cfg.cache_dir) if cfg.cache_dir else None, enabled=cfg.cache)
    out_dir = Path(cfg.out)
    with tempfile.TemporaryDirectory(prefix="edgeopt-") as scratch:
        ctx = PassContext(
            work_dir=Path(scratch),
            calibration=calib,
            train_data=train,
            eval_data=eval_data,
            input_specs=declared_input_specs(source, cfg.input_shapes),
            seed=cfg.seed,
            shared={"source": source, "distill_hard_weight": cfg.distill_hard_weight},  # distill's teacher
        )
        if cfg.cache:  # quantization: calibration tables persist beside the pass cache (edgeopt.quant.store)
            ctx.shared["calibration_cache_dir"] = str(cache.root / "calibration")
        planned = plan(cfg, source, ctx)
        result = CompileResult(cfg, planned)
        if dry_run:
            return result
        created = not out_dir.exists()
        before = _files_under(out_dir)
        ensure_writable_dir(out_dir)
        result.out = out_dir
        check_inputs = _check_inputs(source, eval_data or calib)
        try:
            for pv in planned:
                result.variants.append(_build(pv, source, ctx, cache, check_inputs, out_dir, prog))
            result.report = _measure_and_report(result, source, eval_data, prog)
        except BaseException:  # no partial output: what this run wrote goes (files of an earlier run stay)
            _remove_new_files(out_dir, before, created)
            raise
    return result


def _files_under(folder: Path) -> set[Path]:
    """Every file and folder below `folder`."""
    return set(folder.rglob("*")) if folder.is_dir() else set()


def _remove_new_files(folder: Path, before: set[Path], created: bool) -> None:
    """Delete what a failed compile added under `folder` (all of it when this compile created the folder)."""
    if created:
        shutil.rmtree(folder, ignore_errors=True)
        return
    new = _files_under(folder) - before
    for path in sorted((p for p in new if not p.is_dir()), key=str):
        path.unlink(missing_ok=True)
    for sub in sorted((p for p in new if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(sub.iterdir()):
            sub.rmdir()


def _measure_and_report(result: CompileResult, source: Artifact, data: Any, prog: Progress) -> dict[str, Any]:
    """Evaluate and time the runnable builds beside the reference, then write the reports."""
    from edgeopt.evaluate.variants import measure_variants
    from edgeopt.report.build import build_manifest, build_report, write_reports

    runnable = {
        bv.planned.name: (bv.planned.target.backend_instance(), bv.runnable or bv.result.artifact)
        for bv in result.variants
        if bv.status == "ok" and bv.result is not None
    }
    meas = measure_variants(source, runnable, data, result.config, prog)
    assert result.out is not None
    report = build_report(result, source, meas, data)
    write_reports(result.out, report, build_manifest(result, source, report))
    return report


def _check_inputs(source: Artifact, data: Any) -> dict[str, np.ndarray] | None:
    if data is None:
        return None
    from edgeopt.pipeline import CHECK_SAMPLES

    return data.take(min(CHECK_SAMPLES, len(data))).inputs


def _build(
    pv: PlannedVariant,
    source: Artifact,
    ctx: PassContext,
    cache: Cache,
    check_inputs: dict[str, np.ndarray] | None,
    out_dir: Path,
    prog: Progress,
) -> BuiltVariant:
    """Run one variant's chain; a backend that cannot run here gives a 'not built' status, not an error."""
    ctx.target = pv.target
    try:
        res = pv.pipeline.run(source, ctx, cache, pv.target.name, check_inputs, prog, label=f"{pv.name} ")
    except EdgeoptError:
        raise
    except Exception as exc:  # noqa: BLE001 - one failing variant must not hide the others
        log.debug("variant %s failed", pv.name, exc_info=True)
        msg = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        prog.warn(f"{pv.name} {msg}")
        return BuiltVariant(pv, None, None, msg)
    art = res.artifact
    suffix = art.path.suffix if art.path is not None else ""
    dest = out_dir / "artifacts" / f"{pv.target.name}-{pv.spec.name}{suffix}"
    if art.path is not None:
        copy_atomic(art.path, dest)
        write_build_files(art, dest, ctx.shared)  # a no-op unless the build carries a calibration table
    status = "ok"
    why = pv.target.availability()
    if why is not None:
        status = f"not run: {why}"
    deployment = pv.target.backend_instance().finalize(res.artifact, dest)
    return BuiltVariant(pv, res, dest, deployment.status or status, deployment.fields, deployment.artifact)


__all__ = ["CompileResult", "compile", "plan"]
