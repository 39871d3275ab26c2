"""TensorRT engine artifacts: a serialized engine plus the manifest that says where it can run.

An engine is only valid for the TensorRT version and the GPU model it was built with. Each engine edgeopt writes
gets `<engine>.manifest.json` beside it (TensorRT version, GPU name, compute capability, hashes), and loading an
engine on another GPU or TensorRT version is refused with a message naming both, before TensorRT is asked.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeopt.artifacts.base import Artifact, ArtifactKind, PassRecord, TensorSpec
from edgeopt.errors import EdgeoptError, ModelFileError
from edgeopt.fileio import sha256_file, write_json_atomic

MANIFEST_SCHEMA = "edgeopt.trt-engine/1"


class EngineMismatchError(EdgeoptError):
    """An engine built for another GPU or TensorRT version."""


@dataclass(frozen=True)
class EngineHost:
    """The facts an engine depends on: TensorRT version, GPU name and compute capability (None when absent)."""

    tensorrt: str | None
    gpu: str | None
    compute_capability: str | None

    @classmethod
    def current(cls, device: int = 0) -> EngineHost:
        """This machine, looked up lazily (no import error when TensorRT or CUDA is missing)."""
        from edgeopt.backends.tensorrt.trt_import import import_tensorrt

        trt = import_tensorrt()
        version: str | None = str(trt.__version__) if trt is not None else None
        gpu = cc = None
        try:
            import torch

            if torch.cuda.is_available():
                gpu = torch.cuda.get_device_name(device)
                major, minor = torch.cuda.get_device_capability(device)
                cc = f"{major}.{minor}"
        except ImportError:  # pragma: no cover - torch is a core dependency
            pass
        return cls(version, gpu, cc)

    def describe(self) -> str:
        """'TensorRT 10.3.0 on NVIDIA A100 (compute capability 8.0)', or what is missing."""
        trt = f"TensorRT {self.tensorrt}" if self.tensorrt else "no TensorRT"
        gpu = f"{self.gpu} (compute capability {self.compute_capability})" if self.gpu else "no NVIDIA GPU"
        return f"{trt} on {gpu}"


@dataclass(frozen=True)
class EngineManifest:
    """What an engine was built from and for."""

    tensorrt: str
    gpu: str
    compute_capability: str
    engine_sha256: str
    onnx_sha256: str = ""
    precision: str = ""
    profiles: dict[str, list[list[int]]] = field(default_factory=dict)
    workspace_mb: int = 0
    schema: str = MANIFEST_SCHEMA

    @property
    def host(self) -> EngineHost:
        return EngineHost(self.tensorrt, self.gpu, self.compute_capability)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def read(cls, path: Path) -> EngineManifest:
        """Parse a manifest file; a damaged or foreign one is a ModelFileError naming it."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("schema") != MANIFEST_SCHEMA:
                raise ValueError(f"schema is {raw.get('schema')!r}")
            return cls(**raw)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise ModelFileError(f"engine manifest {path} is unreadable ({exc})", "rebuild the engine") from exc

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_dict())


def manifest_path(engine: str | os.PathLike[str]) -> Path:
    """Where an engine's manifest lives: beside it, `<engine>.manifest.json`."""
    p = Path(engine)
    return p.with_name(p.name + ".manifest.json")


def check_compatible(manifest: EngineManifest, host: EngineHost) -> str | None:
    """None when an engine with this manifest runs on `host`; else why not, naming both sides."""
    same_trt = manifest.tensorrt == host.tensorrt
    same_gpu = manifest.gpu == host.gpu and manifest.compute_capability == host.compute_capability
    if same_trt and same_gpu:
        return None
    what = [] if same_trt else ["TensorRT version"]
    what += [] if same_gpu else ["GPU"]
    return (f"the engine was built with {manifest.host.describe()} but this machine has {host.describe()} "
            f"(different {' and '.join(what)}); TensorRT engines run only where they were built")


@dataclass
class TrtEngine(Artifact):
    """A serialized TensorRT engine on disk and its manifest (None for engines built elsewhere, e.g. by trtexec)."""

    manifest: EngineManifest | None = None
    inputs: list[TensorSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kind = ArtifactKind.TRT_ENGINE

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], provenance: tuple[PassRecord, ...] = ()) -> TrtEngine:
        """Open an engine file and read its manifest when there is one (the engine is not deserialized here)."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"engine file {path} does not exist", "check the path or rebuild the engine")
        digest = sha256_file(path)
        mpath = manifest_path(path)
        manifest = EngineManifest.read(mpath) if mpath.is_file() else None
        if manifest is not None and manifest.engine_sha256 != digest:
            raise ModelFileError(
                f"engine manifest {mpath} describes another file (sha256 differs from {path.name})",
                "rebuild the engine, or delete the stale manifest",
            )
        return cls(path=path, sha256=digest, provenance=provenance, manifest=manifest)

    def check_runs_on(self, host: EngineHost) -> None:
        """Raise EngineMismatchError when the manifest says this engine was built for another GPU or TensorRT."""
        if self.manifest is None:
            return
        why = check_compatible(self.manifest, host)
        if why is not None:
            raise EngineMismatchError(
                f"cannot run {self.path}: {why}",
                "rebuild it on this machine from the TensorRT-ready ONNX (its .trtexec.sh, or edgeopt compile)",
            )

    def input_specs(self) -> list[TensorSpec]:
        return list(self.inputs)

    def output_specs(self) -> list[TensorSpec]:
        return []

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "path": str(self.path),
            "sha256": self.sha256,
            "manifest": self.manifest.to_dict() if self.manifest else None,
            "inputs": [],
            "outputs": [],
            "ops": {},
            "size_bytes": self.size_bytes(),
        }
