"""Target profiles: YAML files naming a backend, its options and the variants built for it."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeopt.artifacts.base import ArtifactKind
from edgeopt.backends.base import get_backend
from edgeopt.errors import ConfigError


class VariantSpec(BaseModel):
    """One build of a target: a name, its precision and the passes after conversion to the target's kind."""

    model_config = ConfigDict(extra="forbid")

    name: str
    precision: str = "fp32"
    passes: list[Any] = Field(default_factory=list)
    description: str = ""


class Target(BaseModel):
    """A deployment target profile."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    backend: str
    artifact: ArtifactKind = ArtifactKind.ONNX
    options: dict[str, Any] = Field(default_factory=dict)
    variants: list[VariantSpec] = Field(default_factory=list)

    def availability(self) -> str | None:
        """None when this target's backend, with this profile's options, can run here, else why not."""
        return self.backend_instance().why_not_here()

    def backend_instance(self) -> Any:
        """The backend with this profile's options (validated by the backend)."""
        return get_backend(self.backend)(self.options)


def targets_dir() -> Path:
    """Where target profiles live: package data in an install, the repo's targets/ in a checkout."""
    packaged = resources.files("edgeopt") / "_data" / "targets"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "targets"


def data_dir(name: str) -> Path:
    """A top-level data folder shipped with the package (targets, calibration)."""
    packaged = resources.files("edgeopt") / "_data" / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / name


def load_target_file(path: Path) -> Target:
    """Read and validate one profile."""
    try:
        raw = yaml.safe_load(path.read_text())
        return Target(**raw)
    except (yaml.YAMLError, TypeError) as exc:
        raise ConfigError(f"target profile {path} is not valid YAML", "fix the file") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid target profile {path}: {problems}", "fix the file") from exc


def list_targets() -> dict[str, Target]:
    """All shipped profiles by name."""
    out = {}
    for path in sorted(data_dir("targets").glob("*.yaml")):
        t = load_target_file(path)
        out[t.name] = t
    return out


def get_target(name: str) -> Target:
    """A profile by name (or a path to a YAML profile), suggesting the closest name on a typo."""
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return load_target_file(Path(name))
    known = list_targets()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.4)
        hint = f"did you mean '{close[0]}'?" if close else "see `edgeopt targets`"
        raise ConfigError(f"unknown target '{name}' (known: {', '.join(known)})", hint)
    return known[name]
