"""Knowledge distillation (torch -> torch): the pipeline's source model teaches the pass input (e.g. a pruned copy).

loss = KL(softmax(teacher / T) || softmax(student / T)) * T^2 * (1 - hard_weight)
     + cross-entropy(student, labels) * hard_weight
     + feature_weight * mean-squared error between adapted student and teacher features (optional)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from pydantic import Field
from torch import nn

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.torch_model import TorchModel
from edgeopt.errors import ConfigError
from edgeopt.passes.base import Pass, PassContext
from edgeopt.passes.registry import register_pass
from edgeopt.passes.torch import finetune  # noqa: F401 - registers the finetune baseline beside distill
from edgeopt.passes.torch.eager_module import base_sha256, eager_problems, example_args, save_module, trainable_module
from edgeopt.passes.torch.training import TrainConfig, budget_problems, describe_training, train

DEFAULT_HARD_WEIGHT = 0.5


class DistillConfig(TrainConfig):
    """Distillation settings on top of the shared training budget and optimizer."""

    temperature: float = Field(4.0, gt=0)
    hard_weight: float | None = Field(
        None, ge=0, le=1, description="weight of the hard-label loss; default: the compile config's distill_hard_weight"
    )
    feature_weight: float = Field(0.0, ge=0, description="weight of feature matching at feature_layers")
    feature_layers: list[str] = Field(default_factory=list, description="module names matched student <-> teacher")


def hard_weight(cfg: DistillConfig, ctx: PassContext) -> float:
    """The hard-label weight in effect: the pass config's, else the compile config's, else 0.5."""
    if cfg.hard_weight is not None:
        return cfg.hard_weight
    value = ctx.shared.get("distill_hard_weight")
    return float(value) if value is not None else DEFAULT_HARD_WEIGHT


@register_pass
class Distill(Pass):
    """Train the pass input to match the pipeline source's soft predictions (and the labels, by hard_weight)."""

    name = "distill"
    version = "1"
    input_kind = ArtifactKind.TORCH
    output_kind = ArtifactKind.TORCH
    Config = DistillConfig
    needs_training_data = True
    preserves_semantics = False
    output_suffix = ".pt2"
    tools = ("torch",)

    @property
    def cfg(self) -> DistillConfig:
        """The typed config."""
        return self.config  # type: ignore[return-value]

    def check(self, ctx: PassContext) -> list[str]:
        problems = super().check(ctx) + budget_problems(self.name, self.cfg) + eager_problems(self.name, ctx)
        if not isinstance(ctx.shared.get("source"), TorchModel):
            problems.append("pass 'distill' needs a torch source model as its teacher (ctx.shared['source'])")
        data = ctx.train_data
        if data is not None and not data.has_labels and hard_weight(self.cfg, ctx) > 0:
            problems.append(
                "the training data has no labels: soft-label-only distillation needs --distill-hard-weight 0 "
                "(distill_hard_weight: 0 in the config)"
            )
        if self.cfg.feature_weight > 0 and not self.cfg.feature_layers:
            problems.append("pass 'distill': feature_weight > 0 needs feature_layers (module names)")
        return problems

    def cache_extra(self, ctx: PassContext) -> dict[str, Any]:
        extra = super().cache_extra(ctx)
        source = ctx.shared.get("source")
        extra["teacher"] = source.sha256 if isinstance(source, TorchModel) else None
        extra["hard_weight"] = hard_weight(self.cfg, ctx)
        return extra

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        if not isinstance(model, TorchModel):
            raise TypeError("distill takes a TorchModel")
        cfg, specs = self.cfg, model.input_specs()
        student = trainable_module(model, ctx)
        teacher = ctx.shared["source"].module
        temp, hard = cfg.temperature, hard_weight(cfg, ctx)
        features = _FeatureMatch(student, teacher, cfg.feature_layers, example_args(specs, 2, ctx.seed), ctx.seed)

        def loss_fn(net: nn.Module, x: tuple[torch.Tensor, ...], y: torch.Tensor | None) -> torch.Tensor:
            features.clear()
            logits = net(*x)
            with torch.no_grad():
                target = teacher(*x)
            soft = F.kl_div(
                F.log_softmax(logits / temp, 1), F.log_softmax(target / temp, 1), log_target=True, reduction="batchmean"
            )
            loss = soft * temp * temp * (1.0 - hard)
            if hard > 0 and y is not None:
                loss = loss + hard * F.cross_entropy(logits, y)
            if cfg.feature_weight > 0:
                loss = loss + cfg.feature_weight * features.loss()
            return loss

        try:
            summary = train(student, loss_fn, cfg, ctx, specs, "distill", extra=features.adapters)
        finally:
            features.remove()
        ctx.shared.setdefault("notes", []).append(
            f"distilled from the source (T={temp:g}, hard_weight={hard:g}, feature_weight={cfg.feature_weight:g}): "
            + describe_training(summary)
        )
        save_module(student, specs, out_path, base_sha256(model), ctx.seed)
        return TorchModel.from_module(student, specs, path=out_path)


class _FeatureMatch:
    """Hooks on named student and teacher modules, with 1x1 adapters from student to teacher channel counts."""

    def __init__(self, student: nn.Module, teacher: nn.Module, names: list[str], args: Any, seed: int) -> None:
        self.names, self.hooks = list(names), []
        self.student_out: dict[str, torch.Tensor] = {}
        self.teacher_out: dict[str, torch.Tensor] = {}
        self.adapters = nn.ModuleDict()
        s_mods, t_mods = dict(student.named_modules()), dict(teacher.named_modules())
        for name in self.names:
            if name not in s_mods or name not in t_mods:
                raise ConfigError(
                    f"distill feature layer '{name}' is not a module of both student and teacher",
                    "name a module of the source model, e.g. 'layers.1'",
                )
            self.hooks.append(s_mods[name].register_forward_hook(self._keep(self.student_out, name)))
            self.hooks.append(t_mods[name].register_forward_hook(self._keep(self.teacher_out, name)))
        if self.names:
            with torch.no_grad():
                student.eval()(*args)
                teacher(*args)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                for name in self.names:
                    s, t = self.student_out[name].shape[1], self.teacher_out[name].shape[1]
                    conv = self.student_out[name].dim() == 4
                    self.adapters[name.replace(".", "_")] = nn.Conv2d(s, t, 1, bias=False) if conv else nn.Linear(s, t)

    @staticmethod
    def _keep(store: dict[str, torch.Tensor], name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, out: Any) -> None:
            store[name] = out

        return hook

    def clear(self) -> None:
        """Forget the features of the previous step."""
        self.student_out.clear()
        self.teacher_out.clear()

    def loss(self) -> torch.Tensor:
        """Mean squared error between adapted student features and teacher features, averaged over layers."""
        terms = [
            F.mse_loss(self.adapters[n.replace(".", "_")](self.student_out[n]), self.teacher_out[n].detach())
            for n in self.names
        ]
        return torch.stack(terms).mean()

    def remove(self) -> None:
        """Take the hooks off both models."""
        for h in self.hooks:
            h.remove()
