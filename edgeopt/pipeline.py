"""The Pipeline: validate a whole pass chain before any work, then run it with caching and numerical checks."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeopt.artifacts.base import Artifact, ArtifactKind, PassRecord
from edgeopt.artifacts.loading import open_artifact
from edgeopt.backends.base import reference_runner, run_batched
from edgeopt.cache import Cache, tool_versions
from edgeopt.errors import ConfigError, EdgeoptError, PipelineError
from edgeopt.evaluate.fidelity import compare_outputs
from edgeopt.fileio import atomic_path, sha256_bytes
from edgeopt.passes.base import Pass, PassContext
from edgeopt.passes.registry import REGISTRY
from edgeopt.progress import Progress

StepSpec = Pass | str | tuple[str, dict[str, Any]] | dict[str, Any]
CHECK_SAMPLES = 8
log = logging.getLogger(__name__)


@dataclass
class StepRecord:
    """What one pass did: timing, sizes, ops, numbers, cache use."""

    pass_name: str
    config: dict[str, Any]
    parent_sha256: str
    output_sha256: str
    wall_s: float
    size_bytes: int
    ops: dict[str, int]
    check: dict[str, Any] | None
    cached: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pass": self.pass_name,
            "config": self.config,
            "parent_sha256": self.parent_sha256,
            "output_sha256": self.output_sha256,
            "wall_s": round(self.wall_s, 4),
            "size_bytes": self.size_bytes,
            "ops": self.ops,
            "check": self.check,
            "cached": self.cached,
            "notes": self.notes,
        }


@dataclass
class PipelineResult:
    """The final artifact and the record of every step."""

    artifact: Artifact
    steps: list[StepRecord]


def step_name(step: StepSpec) -> str | None:
    """The pass name a step spec refers to (name, (name, config), {name: config}, {name: ..} or a Pass)."""
    if isinstance(step, str):
        return step
    if isinstance(step, tuple) and step:
        return str(step[0])
    if isinstance(step, dict):
        return step.get("name") or (next(iter(step)) if len(step) == 1 else None)
    return getattr(step, "name", None)


def _build_step(spec: StepSpec, problems: list[str]) -> Pass | None:
    try:
        if isinstance(spec, Pass):
            return spec
        if isinstance(spec, str):
            return REGISTRY.get(spec)()
        if isinstance(spec, tuple):
            name, cfg = spec
            return REGISTRY.get(name)(cfg)
        if isinstance(spec, dict):
            if len(spec) == 1 and "name" not in spec:
                ((name, cfg),) = spec.items()
                return REGISTRY.get(name)(cfg or {})
            cfg = dict(spec)
            name = cfg.pop("name", None)
            if not name:
                raise ConfigError(f"pass spec {spec!r} has no name", "write {name: simplify, ...} or {simplify: {...}}")
            return REGISTRY.get(name)(cfg.pop("config", cfg))
        raise ConfigError(f"cannot read pass spec {spec!r}", "use a pass name, (name, config) or {name: config}")
    except EdgeoptError as exc:
        problems.append(str(exc))
        return None


class Pipeline:
    """An ordered list of passes. Construct with pass instances, names, (name, config) pairs or {name: config}."""

    def __init__(self, steps: list[StepSpec]) -> None:
        problems: list[str] = []
        built = [_build_step(s, problems) for s in steps]
        if problems:
            raise PipelineError(problems)
        self.passes: list[Pass] = [p for p in built if p is not None]

    @property
    def output_kind(self) -> ArtifactKind | None:
        return self.passes[-1].output_kind if self.passes else None

    def validate(self, input_kind: ArtifactKind, ctx: PassContext, target: str | None = None) -> list[str]:
        """Every problem that would stop the chain (kinds, data, targets); empty when it can run."""
        problems: list[str] = []
        kind, prev = input_kind, "the input model"
        for p in self.passes:
            if p.input_kind != kind:
                problems.append(f"pass '{p.name}' takes {p.input_kind.value} but {prev} gives {kind.value}")
            problems.extend(p.check(ctx))
            if target is not None and "*" not in p.targets and target not in p.targets:
                problems.append(f"pass '{p.name}' does not serve target '{target}' (serves {', '.join(p.targets)})")
            kind, prev = p.output_kind, f"pass '{p.name}'"
        return problems

    def run(
        self,
        artifact: Artifact,
        ctx: PassContext,
        cache: Cache,
        target: str | None = None,
        check_inputs: dict[str, np.ndarray] | None = None,
        progress: Progress | None = None,
        label: str = "",
    ) -> PipelineResult:
        """Validate, then run each pass (or take it from the cache), checking numbers where semantics must hold."""
        problems = self.validate(artifact.kind, ctx, target)
        if problems:
            raise PipelineError(problems)
        progress = progress or Progress(enabled=False)
        steps: list[StepRecord] = []
        memo: dict[tuple[str, str], list[np.ndarray]] = {}  # outputs per (artifact, inputs) for the checks
        current = artifact
        for i, p in enumerate(self.passes):
            key_parts = {
                "input": current.sha256,
                "pass": p.name,
                "version": p.version,
                "config": p.config_dict(),
                "target": target if "*" not in p.targets else None,
                "extra": p.cache_extra(ctx),
                "tools": tool_versions(p.tools),
                "seed": ctx.seed,
            }
            key = cache.key(key_parts)
            hit = cache.lookup(key, p.output_suffix)
            text = f"{label}[{i + 1}/{len(self.passes)}] {p.name}"
            if hit is not None:
                path, rec = hit
                out = open_artifact(p.output_kind, path)
                record = StepRecord(**{**rec, "cached": True})
                progress.info(f"[dim]•[/dim] {text} [dim](cached)[/dim]")
            else:
                # Training passes checkpoint here, so that a re-run of the same step resumes after an interruption.
                ctx.shared["checkpoint_dir"] = cache.root / "checkpoints" / key if cache.enabled else None
                with progress.step(text):
                    start = time.perf_counter()
                    out_file = ctx.work_dir / f"{key}{p.output_suffix}"
                    with atomic_path(out_file) as tmp:
                        produced = p.run(current, ctx, tmp)
                    wall = time.perf_counter() - start
                    produced = open_artifact(p.output_kind, out_file)
                    check = self._check(p, current, produced, ctx, check_inputs, memo)
                    notes = list(ctx.shared.pop("notes", []))
                    record = StepRecord(
                        pass_name=p.name,
                        config=p.config_dict(),
                        parent_sha256=current.sha256,
                        output_sha256=produced.sha256,
                        wall_s=wall,
                        size_bytes=produced.size_bytes(),
                        ops=produced.op_histogram(),
                        check=check,
                        cached=False,
                        notes=notes,
                    )
                    rec = record.to_dict()
                    stored = cache.store(key, out_file, {k: rec[k2] for k, k2 in _REC_FIELDS.items()})
                    out = open_artifact(p.output_kind, stored)
            out.provenance = (*current.provenance, PassRecord(p.name, p.version, p.config_dict(), current.sha256))
            steps.append(record)
            current = out
        return PipelineResult(current, steps)

    @staticmethod
    def _outputs(art: Artifact, inputs: dict[str, np.ndarray], memo: dict[tuple[str, str], list[np.ndarray]]) -> Any:
        """Outputs of `art` on `inputs`; a pass's output is the next pass's input, so each is run once."""
        digest = sha256_bytes(
            b"".join(k.encode() + np.ascontiguousarray(v).tobytes() for k, v in sorted(inputs.items()))
        )
        key = (art.sha256, digest)
        if key not in memo:
            memo[key] = run_batched(reference_runner(art, threads=1), inputs)
        return memo[key]

    def _check(
        self,
        p: Pass,
        before: Artifact,
        after: Artifact,
        ctx: PassContext,
        inputs: dict[str, np.ndarray] | None,
        memo: dict[tuple[str, str], list[np.ndarray]],
    ) -> dict[str, Any] | None:
        """Compare outputs before/after a pass on real inputs when given, random ones otherwise. A pass that changes
        numbers by design (prune, distill, quantize) gets the same comparison as a record, not a check ("ok": None)."""
        source = "real"
        if inputs is None:
            inputs, source = before.random_inputs(batch=2, seed=ctx.seed), "random"
        try:
            ref, got = self._outputs(before, inputs, memo), self._outputs(after, inputs, memo)
        except Exception as exc:  # noqa: BLE001 - a record only: a build that cannot run here is measured later
            if p.preserves_semantics:
                raise
            log.debug("no numerical record for pass '%s': %s", p.name, exc)
            return None
        result: dict[str, Any] = {**compare_outputs(ref, got), "inputs": source, "n": len(next(iter(inputs.values())))}
        if not p.preserves_semantics:
            return {**result, "ok": None, "kind": "measured"}
        tol_abs, tol_cos = p.check_tolerance
        scale = max(1.0, float(max(np.max(np.abs(r)) for r in ref)))
        result["ok"] = bool(result["max_abs"] <= tol_abs * scale and result["cosine"] >= tol_cos)
        if not result["ok"]:
            raise PipelineError(
                [
                    f"pass '{p.name}' changed the model's outputs (max abs diff {result['max_abs']:.3g}, "
                    f"cosine {result['cosine']:.6f}; tolerance {tol_abs:g} x {scale:.3g}, {tol_cos})"
                ],
                "report this model to the edgeopt developers; run with --debug for details",
            )
        return result


_REC_FIELDS = {
    k: k
    for k in ("config", "parent_sha256", "output_sha256", "wall_s", "size_bytes", "ops", "check", "cached", "notes")
}
_REC_FIELDS["pass_name"] = "pass"
