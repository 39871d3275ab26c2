"""Structured channel pruning with Torch-Pruning (torch -> torch), to a channel ratio, a MAC or a latency budget."""

from __future__ import annotations

import copy
import functools
import importlib.util
import math
import warnings
import zlib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.torch_model import TorchModel
from edgeopt.errors import ConfigError, ModelFileError
from edgeopt.evaluate.machine import machine_info, machine_summary, simd_float_lanes
from edgeopt.passes.base import Pass, PassConfig, PassContext
from edgeopt.passes.registry import register_pass
from edgeopt.passes.torch import prune_blocks
from edgeopt.passes.torch import prune_checks as checks
from edgeopt.passes.torch.eager_module import base_sha256, eager_problems, example_args, save_module, trainable_module
from edgeopt.passes.torch.prune_search import LatencyProbe, bisect_ratio
from edgeopt.passes.torch.training import labelled_batches


class PruneConfig(PassConfig):
    """What to remove and how to rank channels. Give one of ratio / macs / latency, and/or sparsity."""

    ratio: float | None = Field(None, gt=0, lt=1, description="fraction of the channels of each group to remove")
    macs: float | None = Field(None, gt=0, lt=1, description="MAC budget: fraction of the original MACs to keep")
    latency: float | None = Field(None, gt=0, lt=1, description="budget: fraction of the ORT FP32 latency to keep")
    importance: Literal["l1", "l2", "taylor"] = "l1"
    global_pruning: bool = Field(False, description="rank channels across layers instead of a uniform ratio")
    exclude: list[str] = Field(default_factory=list, description="layer name globs or type names never pruned")
    round_to: int | Literal["auto"] | None = Field(
        default_factory=simd_float_lanes,
        description="kept channels: nearest multiple of this, at least this; auto (the default): this CPU's float "
                    "SIMD width, the channel block of ORT's conv kernels (16 with AVX-512, else 8)")
    max_ratio: float = Field(0.9, gt=0, lt=1, description="no layer loses more than this fraction of its channels")
    sparsity: float | None = Field(None, gt=0, lt=1, description="unstructured: zero this fraction of the weights")
    blocks: int = Field(
        0, ge=0, description="depth pruning, before the channels: remove this many whole blocks that return their "
                             "input's shape (residual blocks), those that change their input least on the data")
    taylor_batches: int = Field(4, ge=1, description="batches of data for Taylor importance and for ranking blocks")
    batch_size: int = Field(32, ge=1)
    search_steps: int = Field(10, ge=1, le=30, description="bisection steps of a MAC or latency budget search")
    tolerance: float = Field(0.02, ge=0, description="a search stops within this fraction under the budget")
    latency_threads: int | None = Field(None, ge=1, description="threads for latency probes; default all cores")
    latency_seconds: float = Field(2.0, gt=0, description="timing per latency probe")
    latency_margin: float = Field(0.03, ge=0, lt=1, description="a latency search aims this far under the budget")

    @field_validator("round_to", mode="before")
    @classmethod
    def _resolve_round_to(cls, v: Any) -> Any:
        if v == "auto":  # resolved before any work, so the cache key and the report hold the number used
            return simd_float_lanes()
        if isinstance(v, int) and v < 1:
            raise ValueError("round_to must be at least 1 (or 'auto', or null for no rounding)")
        return v

    @model_validator(mode="after")
    def _one_target(self) -> PruneConfig:
        chosen = [k for k in ("ratio", "macs", "latency") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(f"give one of ratio, macs, latency (got {', '.join(chosen)})")
        if not chosen and self.sparsity is None and not self.blocks:
            raise ValueError("give a target: ratio, macs, latency, sparsity or blocks")
        return self


@register_pass
class Prune(Pass):
    """Remove whole channels, following every dependency (residual adds, concats, depthwise convs, linear heads)."""

    name = "prune"
    version = "1"
    input_kind = ArtifactKind.TORCH
    output_kind = ArtifactKind.TORCH
    Config = PruneConfig
    preserves_semantics = False
    output_suffix = ".pt2"
    tools = ("torch", "torch-pruning", "onnxruntime", "onnxscript")

    @property
    def cfg(self) -> PruneConfig:
        """The typed config."""
        return self.config  # type: ignore[return-value]

    def check(self, ctx: PassContext) -> list[str]:
        problems = super().check(ctx) + eager_problems(self.name, ctx)
        if importlib.util.find_spec("torch_pruning") is None:
            problems.append("pass 'prune' needs Torch-Pruning, which is not installed: pip install 'edgeopt[prune]'")
        if self.cfg.importance == "taylor" and self._data(ctx) is None:
            problems.append("pass 'prune' with importance 'taylor' needs data for gradients (--train or --calibration)")
        if self.cfg.blocks and self._data(ctx) is None:
            problems.append("pass 'prune' with blocks needs data to rank the blocks (--train or --calibration)")
        return problems

    def cache_extra(self, ctx: PassContext) -> dict[str, Any]:
        extra = super().cache_extra(ctx)
        if self.cfg.importance == "taylor":
            extra["gradient_data"] = self._data(ctx).describe()
        if self.cfg.blocks:
            extra["block_ranking_data"] = self._data(ctx).describe()
        if self.cfg.latency is not None:  # the result depends on the machine it was timed on
            extra["latency_machine"] = machine_summary(machine_info(self.cfg.latency_threads))
        return extra

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        if not isinstance(model, TorchModel):
            raise TypeError("prune takes a TorchModel")
        cfg, specs = self.cfg, model.input_specs()
        module = trainable_module(model, ctx).eval()
        args = example_args(specs, 1, ctx.seed)
        notes: list[str] = ctx.shared.setdefault("notes", [])
        base_macs = sum(checks.layer_macs(module, args).values())
        ignored = self._ignored(module, args)
        source = module
        if cfg.blocks:
            batches = [x for x, _ in labelled_batches(self._data(ctx), specs, cfg.batch_size, cfg.taylor_batches)]
            module, note = prune_blocks.drop_blocks(module, args, cfg.blocks, set(ignored), batches, base_macs)
            notes.append(note)
        grads = self._taylor_grads(module, ctx, specs) if cfg.importance == "taylor" else {}
        pruned, ratio = module, None
        if cfg.ratio is not None:
            ratio, pruned = cfg.ratio, self._prune(module, cfg.ratio, args, ignored, grads)
        elif cfg.macs is not None or cfg.latency is not None:
            ratio, pruned = self._search(module, source, args, ignored, grads, base_macs, ctx, specs, notes)
        if ratio is not None:
            macs = sum(checks.layer_macs(pruned, args).values())
            if macs >= (base_macs if module is source else sum(checks.layer_macs(module, args).values())):
                raise ConfigError(
                    "pruning removed no channel: every prunable layer is excluded or coupled to an excluded one",
                    f"excluded: {', '.join(sorted(ignored))}; shorten the exclude list",
                )
            notes.append(
                f"structured pruning (ratio {ratio:.3f}, importance {cfg.importance}, round_to {cfg.round_to}): "
                f"MACs {base_macs / 1e6:.2f}M -> {macs / 1e6:.2f}M ({macs / base_macs:.1%} kept), parameters "
                f"{_params(module) / 1e3:.1f}k -> {_params(pruned) / 1e3:.1f}k; excluded: {', '.join(sorted(ignored))}"
            )
        if cfg.sparsity is not None:
            pruned = pruned if pruned is not module else copy.deepcopy(module)
            notes.append(self._sparsify(pruned, ignored))
        save_module(pruned, specs, out_path, base_sha256(model), ctx.seed)
        return TorchModel.from_module(pruned, specs, path=out_path)

    def _ignored(self, module: Any, args: tuple[Any, ...]) -> dict[str, str]:
        """Layers never pruned, with the reason: the final classifier and the user's exclusions."""
        ignored = {n: "excluded" for n in checks.resolve_excludes(module, self.cfg.exclude)}
        for name in checks.classifier_layers(module, args):
            ignored[name] = "the final classifier, never pruned"
        return ignored

    def _prune(
        self, module: Any, ratio: float, args: tuple[Any, ...], ignored: dict[str, str], grads: dict[str, Any]
    ) -> Any:
        """A pruned copy of `module` at `ratio`, checked to compute what the original computes on the kept channels."""
        import torch
        import torch_pruning as tp

        pruner_class = _pruner_class()
        cfg = self.cfg
        work = copy.deepcopy(module).eval()
        layers = dict(work.named_modules())
        for name, g in grads.items():
            work.get_parameter(name).grad = g.clone()
        imp = {"l1": tp.importance.MagnitudeImportance(p=1), "l2": tp.importance.MagnitudeImportance(p=2)}.get(
            cfg.importance, tp.importance.TaylorImportance()
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                pruner = pruner_class(
                    work,
                    args,
                    importance=imp,
                    pruning_ratio=ratio,
                    max_pruning_ratio=cfg.max_ratio,
                    global_pruning=cfg.global_pruning,
                    ignored_layers=[layers[n] for n in sorted(ignored)],
                    round_to=cfg.round_to,
                )
            except Exception as exc:
                raise ModelFileError(
                    f"Torch-Pruning cannot trace this model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                    "prune a model made of standard layers, or exclude the layers around the failing op",
                ) from exc
            graph_layers = {m for m in pruner.DG.module2node if isinstance(m, checks.PRUNABLE)}
            checks.check_traceable(work, args, graph_layers)
            names = {m: n for n, m in work.named_modules()}
            # Input channels each layer loses, in its original numbering: a later group's indices count only the
            # channels still there (a concat consumer loses channels to several groups).
            removed: dict[str, list[int]] = {}
            alive: dict[str, list[int]] = {}
            for group in pruner.step(interactive=True):
                for dep, idxs in group:
                    target = dep.target.module
                    if isinstance(target, checks.PRUNABLE) and pruner.DG.is_in_channel_pruning_fn(dep.handler):
                        name, drop = names[target], {int(i) for i in idxs}
                        count = target.in_features if isinstance(target, torch.nn.Linear) else target.in_channels
                        current = alive.setdefault(name, list(range(count)))
                        removed.setdefault(name, []).extend(current[i] for i in sorted(drop))
                        alive[name] = [c for i, c in enumerate(current) if i not in drop]
                group.prune()
        for p in work.parameters():
            p.grad = None
        gen = torch.Generator().manual_seed(1)
        check_args = tuple(torch.randn((2, *a.shape[1:]), generator=gen, dtype=a.dtype) for a in args)
        checks.check_equivalent(module, work, removed, check_args, pruner.DG)
        return work.eval()

    def _search(
        self,
        module: Any,
        source: Any,
        args: tuple[Any, ...],
        ignored: dict[str, str],
        grads: dict[str, Any],
        base_macs: int,
        ctx: PassContext,
        specs: list[Any],
        notes: list[str],
    ) -> tuple[float, Any]:
        """Bisect the ratio for the smallest one meeting the MAC or latency budget, both counted against `source`
        (the model before any block was removed from `module`); explain an unreachable budget."""
        cfg = self.cfg
        tried: dict[float, tuple[Any, float]] = {}
        probe = LatencyProbe(source, specs, ctx, cfg.latency_threads, cfg.latency_seconds) if cfg.latency else None
        budget = cfg.macs if cfg.macs is not None else cfg.latency
        what = "MAC" if cfg.macs is not None else "latency"
        # Timings of one probe wander by a few percent on a busy machine: aim under the budget by a margin.
        aim = budget if probe is None else budget - cfg.latency_margin  # type: ignore[operator]

        def cost(ratio: float) -> float:
            if ratio not in tried:
                cand = self._prune(module, ratio, args, ignored, grads)
                frac = probe.fraction(cand) if probe else sum(checks.layer_macs(cand, args).values()) / base_macs
                tried[ratio] = (cand, frac)
            return tried[ratio][1]

        best = bisect_ratio(cost, aim, cfg.max_ratio, cfg.search_steps, cfg.tolerance)
        trace = ", ".join(f"{r:.4f}->{f:.1%}" for r, (_, f) in sorted(tried.items()))
        if best is None:
            reached = tried[cfg.max_ratio][1]
            block = checks.blocking_layer(tried[cfg.max_ratio][0], args, base_macs, ignored, cfg.round_to)
            raise ConfigError(
                f"the {what} budget of {budget:.0%} cannot be reached: at the maximum ratio {cfg.max_ratio} the model "
                f"keeps {reached:.0%}; {block}",
                "raise the budget, raise max_ratio, lower round_to or shorten the exclude list",
            )
        how = f" (aiming at {aim:.0%}) measured on {probe.describe()}" if probe else ""
        notes.append(f"{what} budget {budget:.0%}{how}: chose ratio {best:.3f} ({cost(best):.1%}); tried {trace}")
        return best, tried[best][0]

    def _taylor_grads(self, module: Any, ctx: PassContext, specs: list[Any]) -> dict[str, Any]:
        """Gradients of the loss (labels, or the model's own predictions) summed over a few batches of data."""
        import torch

        cfg = self.cfg
        data = self._data(ctx)
        work = copy.deepcopy(module).eval()
        work.zero_grad()
        with torch.enable_grad():
            for x, y in labelled_batches(data, specs, cfg.batch_size, cfg.taylor_batches):
                logits = work(*x)
                target = y if y is not None else logits.detach().argmax(1)
                torch.nn.functional.cross_entropy(logits, target).backward()
        return {n: p.grad.detach().clone() for n, p in work.named_parameters() if p.grad is not None}

    @staticmethod
    def _data(ctx: PassContext) -> Any:
        """The data that ranks channels (Taylor) and blocks: the training data, else the calibration set."""
        return ctx.train_data if ctx.train_data is not None else ctx.calibration

    def _sparsify(self, module: Any, ignored: dict[str, str]) -> str:
        """Zero the smallest-magnitude weights of the Conv/Linear layers (global threshold) in place; describe it."""
        import torch

        layers = [(n, m) for n, m in module.named_modules() if isinstance(m, checks.PRUNABLE) and n not in ignored]
        before = _zipped_size(module)
        with torch.no_grad():
            flat = torch.cat([m.weight.detach().abs().flatten() for _, m in layers])
            k = int(self.cfg.sparsity * flat.numel())  # type: ignore[operator]
            threshold = flat.kthvalue(max(k, 1)).values if k else flat.new_tensor(-1.0)
            zeroed = 0
            for _, m in layers:
                mask = m.weight.abs() <= threshold
                zeroed += int(mask.sum())
                m.weight[mask] = 0
        after = _zipped_size(module)
        return (
            f"unstructured sparsity: {zeroed / flat.numel():.1%} of the weights of {len(layers)} layers are zero; "
            f"the compressed weights shrink from {before / 1e3:.1f} kB to {after / 1e3:.1f} kB (zlib), but latency "
            "does not improve on these backends (ONNX Runtime, LiteRT and TensorRT run dense kernels)"
        )


@functools.cache
def _pruner_class() -> type:
    """Torch-Pruning's MetaPruner, rounding kept channels to the nearest multiple of round_to (at least round_to).

    Torch-Pruning rounds the kept count down, and drops a group whose count would round to zero, so a small ratio
    halves 16-channel layers while a large one leaves them whole: neither a MAC search nor a user expects that.
    """
    import torch_pruning as tp

    class NearestRoundingPruner(tp.pruner.MetaPruner):  # type: ignore[misc]
        _group: Any = None

        def _is_atten_group(self, group: Any) -> Any:
            self._group = group  # called just before _round_to for each group: remember whose channels these are
            return super()._is_atten_group(group)

        def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
            # With grouped convs, n_pruned counts channels per group: round each group so the total is a multiple.
            groups = self._get_channel_groups(self._group) if self._group is not None else 1
            size, step = current_channels // groups, max(1, round_to // math.gcd(round_to, groups))
            if size <= step:
                return 0
            kept = max(step, math.floor((size - n_pruned) / step + 0.5) * step)
            return max(size - kept, 0)

    return NearestRoundingPruner


def _params(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def _zipped_size(module: Any) -> int:
    """Size of the weights after zlib compression: what unstructured sparsity actually saves."""
    raw = b"".join(t.detach().contiguous().numpy().tobytes() for _, t in sorted(module.state_dict().items()))
    return len(zlib.compress(raw, 6))
