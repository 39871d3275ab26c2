"""The explore grid: which MAC budgets, recovery trainings and precisions to cross with the compile targets."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgeopt.artifacts.base import ArtifactKind

Recovery = Literal["none", "distill", "finetune"]


class ExploreGrid(BaseModel):
    """A declared grid: every target's variants x prune budgets x recovery. `--explore` takes the defaults."""

    model_config = ConfigDict(extra="forbid")

    prune: list[float] = Field(
        default_factory=lambda: [1.0, 0.5], description="MAC budgets, fractions of the original MACs; 1.0 = unpruned"
    )
    recovery: list[Recovery] | None = Field(
        None, description="training after pruning; default: none and distill when --train is given, else none"
    )
    precisions: list[str] | None = Field(
        None, description="keep these precisions of each target's variants (fp32, fp16, int8); default all"
    )
    prune_options: dict[str, Any] = Field(default_factory=dict, description="extra prune config (importance, ...)")
    train_options: dict[str, Any] = Field(default_factory=dict, description="distill/finetune config (epochs, ...)")

    @field_validator("prune")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        bad = [f for f in v if not 0 < f <= 1]
        if bad or not v:
            raise ValueError(f"prune budgets must be fractions in (0, 1], got {v}")
        return sorted(set(v), reverse=True)


def resolve_grid(grid: ExploreGrid, source_kind: ArtifactKind, has_train: bool) -> dict[str, Any]:
    """The grid as it will be built here, with a note for every part of the declared grid that cannot be."""
    notes: list[str] = []
    prune = list(grid.prune)
    if source_kind != ArtifactKind.TORCH and any(p < 1 for p in prune):
        prune = [1.0]
        notes.append(
            "pruning and distillation need a torch source (package.module:factory or an nn.Module); this "
            "exploration varies targets and precisions only"
        )
    recovery = list(grid.recovery) if grid.recovery is not None else (["none", "distill"] if has_train else ["none"])
    if grid.recovery is None and not has_train and any(p < 1 for p in prune):
        notes.append("distillation is off: no training data (--train) was given")
    return {
        "prune_macs": prune,
        "recovery": recovery,
        "precisions": grid.precisions,
        "prune_options": grid.prune_options,
        "train_options": grid.train_options,
        "notes": notes,
    }


def explore_summary(cfg: Any, plan: list[Any], source_kind: ArtifactKind) -> dict[str, Any]:
    """The `explore` section of report.json: the grid as built, its variants per target and what was left out."""
    resolved = resolve_grid(cfg.explore, source_kind, cfg.train is not None)
    by_target: dict[str, list[str]] = {}
    for pv in plan:
        by_target.setdefault(pv.target.name, []).append(pv.spec.name)
    notes = list(resolved.pop("notes"))
    for precision in cfg.explore.precisions or []:
        missing = sorted(
            t for t in by_target if not any(pv.spec.precision == precision for pv in plan if pv.target.name == t)
        )
        if missing:
            hint = " (INT8 variants come with --quantize static and --calibration)" if precision == "int8" else ""
            notes.append(f"precision '{precision}' is not available for {', '.join(missing)}{hint}")
    return {**resolved, "targets": cfg.target, "variants": by_target, "notes": notes}
