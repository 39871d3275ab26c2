"""Plain fine-tuning with cross-entropy on the labels (torch -> torch): the baseline that distillation must beat."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from pydantic import Field
from torch import nn

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.torch_model import TorchModel
from edgeopt.passes.base import Pass, PassContext
from edgeopt.passes.registry import register_pass
from edgeopt.passes.torch.eager_module import base_sha256, eager_problems, save_module, trainable_module
from edgeopt.passes.torch.training import TrainConfig, budget_problems, describe_training, train


class FinetuneConfig(TrainConfig):
    """Fine-tuning settings: the shared training budget and optimizer, plus label smoothing."""

    label_smoothing: float = Field(0.0, ge=0, lt=1)


@register_pass
class Finetune(Pass):
    """Train the pass input on the labelled training data (same loop, budget and checkpoints as distill)."""

    name = "finetune"
    version = "1"
    input_kind = ArtifactKind.TORCH
    output_kind = ArtifactKind.TORCH
    Config = FinetuneConfig
    needs_training_data = True
    preserves_semantics = False
    output_suffix = ".pt2"
    tools = ("torch",)

    def check(self, ctx: PassContext) -> list[str]:
        problems = super().check(ctx) + budget_problems(self.name, self.config)  # type: ignore[arg-type]
        problems += eager_problems(self.name, ctx)
        if ctx.train_data is not None and not ctx.train_data.has_labels:
            problems.append("pass 'finetune' needs labelled training data; for unlabelled data use 'distill'")
        return problems

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        if not isinstance(model, TorchModel):
            raise TypeError("finetune takes a TorchModel")
        cfg: FinetuneConfig = self.config  # type: ignore[assignment]
        specs = model.input_specs()
        student = trainable_module(model, ctx)

        def loss_fn(net: nn.Module, x: tuple[torch.Tensor, ...], y: torch.Tensor | None) -> torch.Tensor:
            return F.cross_entropy(net(*x), y, label_smoothing=cfg.label_smoothing)

        summary = train(student, loss_fn, cfg, ctx, specs, "finetune")
        ctx.shared.setdefault("notes", []).append("fine-tuned with cross-entropy: " + describe_training(summary))
        save_module(student, specs, out_path, base_sha256(model), ctx.seed)
        return TorchModel.from_module(student, specs, path=out_path)
