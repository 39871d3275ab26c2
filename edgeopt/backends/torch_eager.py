"""PyTorch eager execution: the reference a torch model is checked and timed against."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt.artifacts.base import Artifact, ArtifactKind, TensorSpec
from edgeopt.artifacts.torch_model import TorchModel
from edgeopt.backends.base import Backend, Runner, register_backend


class TorchRunner(Runner):
    """Runs an nn.Module under inference mode with pinned threads."""

    def __init__(self, model: TorchModel, threads: int | None) -> None:
        import torch

        self.model = model
        self.threads = threads
        if threads:
            torch.set_num_threads(threads)

    def input_specs(self) -> list[TensorSpec]:
        return self.model.input_specs()

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.model.run(inputs)

    def describe(self) -> dict[str, Any]:
        import torch

        return {"runtime": "pytorch-eager", "version": torch.__version__, "threads": torch.get_num_threads()}


@register_backend
class TorchBackend(Backend):
    """PyTorch eager on the CPU (reference only; not a deployment target)."""

    name = "torch"
    artifact_kind = ArtifactKind.TORCH

    def load(self, artifact: Artifact, threads: int | None = None) -> Runner:
        if not isinstance(artifact, TorchModel):
            raise TypeError("the torch backend runs TorchModel artifacts")
        return TorchRunner(artifact, threads)
