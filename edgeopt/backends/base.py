"""The backend contract: one per target runtime; validates its options, loads an artifact, runs it."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from edgeopt.artifacts.base import Artifact, ArtifactKind, TensorSpec
from edgeopt.errors import ConfigError
from edgeopt.evaluate.latency import Timeable


class BackendOptions(BaseModel):
    """Base of backend options: unknown options are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Runner(ABC):
    """A loaded model ready to run: numpy in, numpy out."""

    #: largest batch the model accepts (None: any); a fixed-batch-1 model says 1.
    max_batch: int | None = None

    @abstractmethod
    def input_specs(self) -> list[TensorSpec]:
        """The model inputs as the runtime sees them."""

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one batch; outputs in model order."""

    def describe(self) -> dict[str, Any]:
        """Runtime settings worth recording (threads, provider, versions)."""
        return {}

    def latency_call(self, inputs: dict[str, np.ndarray]) -> Timeable:
        """What the latency harness times for this runner on `inputs`: by default one whole run, numpy in and out,
        on the host clock; a device runtime returns a `SelfTimed` call that measures its own work."""
        return lambda: run_batched(self, inputs)


@dataclass
class Deployment:
    """What a backend adds once a variant's passes ran: a status override, report fields, an artifact to run."""

    status: str | None = None  # None: the usual status ("ok" or "not run: <why>")
    fields: dict[str, Any] = field(default_factory=dict)  # extra report-row fields ("notes": appended to the row's)
    artifact: Artifact | None = None  # what to load and measure instead of the pass output (e.g. a built engine)


class Backend(ABC):
    """A target runtime. Subclasses declare their name, the artifact kind they run and their options."""

    name: ClassVar[str]
    artifact_kind: ClassVar[ArtifactKind]
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    #: pip extra that installs this backend's dependencies ("" when always installed)
    extra: ClassVar[str] = ""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        try:
            self.options = self.Options(**(options or {}))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            fields = ", ".join(sorted(self.Options.model_fields))
            raise ConfigError(f"invalid options for backend '{self.name}': {problems}", f"valid: {fields}") from exc

    @classmethod
    def availability(cls) -> str | None:
        """None when the backend can run here, else the reason it cannot (e.g. a missing package or GPU)."""
        return None

    def why_not_here(self) -> str | None:
        """`availability` under this backend's options (some options need more than the package, e.g. a version)."""
        return self.availability()

    @abstractmethod
    def load(self, artifact: Artifact, threads: int | None = None) -> Runner:
        """Load an artifact of `artifact_kind` for running."""

    def check(self, inputs: list[TensorSpec]) -> list[str]:
        """Problems that stop this backend from deploying a model with these inputs (checked before any work)."""
        return []

    def finalize(self, artifact: Artifact, dest: Path) -> Deployment:
        """Last step of a variant, given its artifact copied to `dest` (e.g. build an engine beside it)."""
        return Deployment()


_BACKEND_MODULES = {
    "ort": "edgeopt.backends.ort.backend",
    "torch": "edgeopt.backends.torch_eager",
    "tflite": "edgeopt.backends.tflite.backend",
    "tensorrt": "edgeopt.backends.tensorrt.backend",
}
_BACKENDS: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make a backend available by name."""
    _BACKENDS[cls.name] = cls
    return cls


def get_backend(name: str) -> type[Backend]:
    """Backend class by name (imported lazily so optional dependencies load only when used)."""
    if name not in _BACKENDS:
        module = _BACKEND_MODULES.get(name)
        if module is None:
            raise ConfigError(f"unknown backend '{name}'", "known backends: " + ", ".join(sorted(_BACKEND_MODULES)))
        importlib.import_module(module)
    return _BACKENDS[name]


_DEFAULT_FOR_KIND = {
    ArtifactKind.ONNX: "ort",
    ArtifactKind.TORCH: "torch",
    ArtifactKind.TFLITE: "tflite",
    ArtifactKind.TRT_ENGINE: "tensorrt",
}


def reference_runner(artifact: Artifact, threads: int | None = None) -> Runner:
    """A runner for any artifact on its default runtime (used for numerical checks)."""
    return get_backend(_DEFAULT_FOR_KIND[artifact.kind])().load(artifact, threads=threads)


def run_batched(runner: Runner, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a batch, splitting it when the model takes a smaller fixed batch."""
    n = len(next(iter(inputs.values())))
    if runner.max_batch is None or n <= runner.max_batch:
        return runner.run(inputs)
    step = runner.max_batch
    parts = [runner.run({k: v[i : i + step] for k, v in inputs.items()}) for i in range(0, n, step)]
    return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]
