"""The artifact contract: a typed handle on a model with its content hash and provenance."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class ArtifactKind(str, enum.Enum):
    """The kinds of model a pass consumes or produces."""

    TORCH = "torch"
    ONNX = "onnx"
    TFLITE = "tflite"
    TRT_ENGINE = "trt_engine"


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, shape (int, symbolic name or None per dim) and numpy dtype name."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str = "float32"

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.shape)

    def concrete_shape(self, batch: int = 1) -> tuple[int, ...]:
        """Shape with the leading dynamic dim set to `batch`; other dynamic dims must be static."""
        dims: list[int] = []
        for i, d in enumerate(self.shape):
            if isinstance(d, int) and d > 0:
                dims.append(d)
            elif i == 0:
                dims.append(batch)
            else:
                from edgeopt.errors import ConfigError

                raise ConfigError(
                    f"input '{self.name}' has dynamic dimension {i} ({d!r})",
                    f"declare its size with --input-shape {self.name}:" + ",".join(str(x) for x in self.shape),
                )
        return tuple(dims)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class PassRecord:
    """One step of provenance: which pass made an artifact from which parent."""

    pass_name: str
    pass_version: str
    config: dict[str, Any]
    parent_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "pass": self.pass_name,
            "version": self.pass_version,
            "config": self.config,
            "parent_sha256": self.parent_sha256,
        }


@dataclass
class Artifact:
    """Base of all model artifacts: kind, content hash, where it lives, how it was made."""

    kind: ArtifactKind = field(init=False)
    path: Path | None
    sha256: str
    provenance: tuple[PassRecord, ...] = ()

    def size_bytes(self) -> int:
        return self.path.stat().st_size if self.path is not None and self.path.exists() else 0

    def input_specs(self) -> list[TensorSpec]:
        raise NotImplementedError

    def output_specs(self) -> list[TensorSpec]:
        raise NotImplementedError

    def op_histogram(self) -> dict[str, int]:
        return {}

    def random_inputs(self, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
        """Deterministic random inputs matching the input specs (ints get small non-negative values)."""
        rng = np.random.default_rng(seed)
        out: dict[str, np.ndarray] = {}
        for spec in self.input_specs():
            shape = spec.concrete_shape(batch)
            if np.issubdtype(np.dtype(spec.dtype), np.integer):
                out[spec.name] = rng.integers(0, 2, size=shape).astype(spec.dtype)
            else:
                out[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        return out
