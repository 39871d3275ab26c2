"""The pass contract: one artifact kind in, one out, a typed config, and metadata the pipeline checks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from edgeopt.artifacts.base import Artifact, ArtifactKind, TensorSpec
from edgeopt.errors import ConfigError


class PassConfig(BaseModel):
    """Base of every pass config: unknown fields are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class PassContext:
    """What a pass may use besides its input: data, the target profile, a scratch folder, a seed."""

    work_dir: Path
    target: Any = None
    calibration: Any = None  # edgeopt.data.DataSource
    train_data: Any = None
    eval_data: Any = None
    input_specs: list[TensorSpec] = field(default_factory=list)
    seed: int = 0
    shared: dict[str, Any] = field(default_factory=dict)  # results passes hand to later passes (e.g. calib tables)


class Pass(ABC):
    """A model transformation. Subclasses declare their contract as class attributes and a `Config` model."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    input_kind: ClassVar[ArtifactKind]
    output_kind: ClassVar[ArtifactKind]
    Config: ClassVar[type[PassConfig]] = PassConfig
    needs_calibration: ClassVar[bool] = False
    needs_training_data: ClassVar[bool] = False
    preserves_semantics: ClassVar[bool] = True
    # Tolerance of the numerical check when semantics must be preserved: (max abs diff, min cosine).
    check_tolerance: ClassVar[tuple[float, float]] = (1e-4, 0.99999)
    targets: ClassVar[tuple[str, ...]] = ("*",)
    output_suffix: ClassVar[str] = ".onnx"
    # Tools whose versions shape the output (cache key and manifest).
    tools: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: PassConfig | dict[str, Any] | None = None) -> None:
        self.config = self.parse_config(config)

    @classmethod
    def parse_config(cls, config: PassConfig | dict[str, Any] | None) -> PassConfig:
        """Validate a config dict against the pass's declared model; errors name the pass and the field."""
        if isinstance(config, cls.Config):
            return config
        try:
            return cls.Config(**(config or {}))
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "config"
                problems.append(f"{loc}: {err['msg']}")
            fields = ", ".join(sorted(cls.Config.model_fields)) or "none"
            raise ConfigError(
                f"invalid config for pass '{cls.name}': " + "; ".join(problems),
                f"valid fields are: {fields}",
            ) from exc

    def config_dict(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    def check(self, ctx: PassContext) -> list[str]:
        """Problems that stop this pass from running in `ctx` (checked before any work); empty if none."""
        problems = []
        if self.needs_calibration and ctx.calibration is None:
            problems.append(f"pass '{self.name}' needs calibration data (--calibration)")
        if self.needs_training_data and ctx.train_data is None:
            problems.append(f"pass '{self.name}' needs training data (--train)")
        return problems

    def cache_extra(self, ctx: PassContext) -> dict[str, Any]:
        """Anything besides input, config and tool versions that shapes the output (e.g. calibration data)."""
        extra: dict[str, Any] = {}
        if self.needs_calibration and ctx.calibration is not None:
            extra["calibration"] = ctx.calibration.describe()
        if self.needs_training_data and ctx.train_data is not None:
            extra["train"] = ctx.train_data.describe()
        return extra

    @abstractmethod
    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        """Write the transformed model to `out_path` (a temporary path; the pipeline renames it) and return it."""

    def __repr__(self) -> str:
        return f"{self.name}({self.config_dict()})"
