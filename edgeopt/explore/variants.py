"""Expand the explore grid into VariantSpecs: torch passes (prune, then distill or finetune) before each variant."""

from __future__ import annotations

from typing import Any

from edgeopt.artifacts.base import ArtifactKind
from edgeopt.explore.grid import ExploreGrid, resolve_grid
from edgeopt.targets import VariantSpec


def variant_tag(macs: float, recovery: str) -> str:
    """Name prefix of a grid cell, e.g. 'macs50-distill'."""
    tag = f"macs{round(macs * 100)}"
    return tag if recovery == "none" else f"{tag}-{recovery}"


def explore_variants(
    base: list[VariantSpec], grid: ExploreGrid, source_kind: ArtifactKind, has_train: bool
) -> list[VariantSpec]:
    """A target's variants crossed with the grid; the unpruned ones keep their names.

    Every cell shares its torch prefix with the other precisions of the same cell, so the pipeline cache builds each
    pruned and trained model once and reuses it for fp32, fp16 and int8.
    """
    resolved = resolve_grid(grid, source_kind, has_train)
    kept = [b for b in base if grid.precisions is None or b.precision in grid.precisions]
    out = list(kept) if 1.0 in resolved["prune_macs"] else []
    for macs in resolved["prune_macs"]:
        if macs >= 1.0:
            continue
        for recovery in resolved["recovery"]:
            prefix: list[Any] = [{"prune": {"macs": macs, **resolved["prune_options"]}}]
            if recovery != "none":
                prefix.append({recovery: dict(resolved["train_options"])})
            tag = variant_tag(macs, recovery)
            trained = "" if recovery == "none" else f", then {recovery}"
            for b in kept:
                out.append(
                    VariantSpec(
                        name=f"{tag}-{b.name}",
                        precision=b.precision,
                        passes=[*prefix, *b.passes],
                        description=f"pruned to {macs:.0%} of the MACs{trained}; {b.description or b.name}",
                    )
                )
    return out
