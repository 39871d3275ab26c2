"""The typed compile configuration: the CLI, the YAML config file and the Python API all build this object."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgeopt.errors import ConfigError
from edgeopt.evaluate.metric import QualityMetric
from edgeopt.explore.grid import ExploreGrid
from edgeopt.targets import VariantSpec


class LatencyConfig(BaseModel):
    """How builds are timed (all variants interleaved in one run)."""

    model_config = ConfigDict(extra="forbid")

    iters: int = Field(100, ge=1)
    warmup: int = Field(10, ge=0)
    threads: int | None = Field(None, ge=1, description="intra-op threads; default: all cores")
    batch: int = Field(1, ge=1)
    max_seconds: float | None = Field(30.0, gt=0, description="cap on measuring time (at least 5 rounds)")


class CompileConfig(BaseModel):
    """Everything `edgeopt compile` needs; `--save-config` writes it as YAML and `--config` reads it back."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="an .onnx file, a torch.export .pt2 file, or package.module:factory")
    target: list[str] = Field(default_factory=lambda: ["ort-cpu"])
    out: str = "edgeopt-out"
    data: str | None = Field(None, description="evaluation data: .npz, MNIST idx folder, image folder or recipe YAML")
    calibration: str | None = None
    train: str | None = None
    input_shapes: dict[str, list[int | str]] = Field(default_factory=dict)
    variants: list[str] | None = Field(None, description="build only these variants of each target")
    extra_variants: list[VariantSpec] = Field(default_factory=list, description="custom pass lists")
    quantize: Literal["none", "dynamic", "static", "auto"] = "none"
    calibration_method: Literal["minmax", "entropy", "percentile", "mse"] = "minmax"
    calibration_samples: int | None = Field(None, ge=1)
    bias_correction: bool = Field(False, description="static INT8: correct quantized Conv/Gemm biases for the mean "
                                  "output shift INT8 causes, measured on calibration samples")
    max_accuracy_drop: float = Field(1.0, ge=0, description="quality budget in points of `metric` vs the reference")
    metric: QualityMetric = Field(
        "auto", description="what judges a build: top1 (labels), top1_agreement, cosine (embeddings); auto: top1 "
        "with labels, else agreement for class scores, else cosine")
    eval_batch_size: int = Field(64, ge=1)
    eval_samples: int | None = Field(None, ge=1)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    seed: int = 0
    cache: bool = True
    cache_dir: str | None = None
    explore: ExploreGrid | None = Field(None, description="build a grid of pruned/distilled variants (true: defaults)")
    distill_hard_weight: float = Field(0.5, ge=0, le=1, description="hard-label loss weight of distill passes")

    @field_validator("explore", mode="before")
    @classmethod
    def _explore_flag(cls, v: Any) -> Any:
        return ({} if v else None) if isinstance(v, bool) else v

    @field_validator("model", "out", "data", "calibration", "train", "cache_dir", mode="before")
    @classmethod
    def _path_as_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, Path) else v

    @field_validator("target", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> CompileConfig:
        """Read a YAML config; `overrides` (e.g. from CLI flags) win over the file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist", "check the --config path")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML", "fix its syntax") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path} must be a mapping", "see `edgeopt compile --save-config`")
        return cls.build({**raw, **overrides}, source=str(path))

    @classmethod
    def build(cls, values: dict[str, Any], source: str = "config") -> CompileConfig:
        """Validate values; every invalid or unknown field is named in one error."""
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = [f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()]
            fix = "see `edgeopt schema` for the fields"
            raise ConfigError(f"invalid {source}: " + "; ".join(problems), fix) from exc

    def to_yaml(self) -> str:
        """YAML form of the config (omits nothing, so it is a complete record)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def parse_input_shapes(items: list[str]) -> dict[str, list[int | str]]:
    """Parse `--input-shape NAME:1,3,224,224` (or `1,3,224,224` for a single input) into a dict."""
    shapes: dict[str, list[int | str]] = {}
    for item in items:
        name, sep, dims = item.rpartition(":")
        if not sep:
            name, dims = "", item
        parsed: list[int | str] = [int(d) if d.strip().lstrip("-").isdigit() else d.strip() for d in dims.split(",")]
        if not dims or any(d == "" for d in parsed):
            raise ConfigError(f"cannot read --input-shape '{item}'", "write NAME:1,3,224,224")
        shapes[name] = parsed
    return shapes
