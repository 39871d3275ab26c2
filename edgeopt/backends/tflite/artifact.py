"""TFLite model artifacts: a .tflite file with its hash, I/O specs and op histogram read from the flatbuffer."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeopt.artifacts.base import Artifact, ArtifactKind, PassRecord, TensorSpec
from edgeopt.backends.tflite.flatbuffer import TfliteSummary, read_summary
from edgeopt.errors import ModelFileError
from edgeopt.fileio import sha256_file


@dataclass
class TfliteModel(Artifact):
    """A .tflite flatbuffer on disk (read with the schema; no interpreter needed)."""

    _summary: TfliteSummary | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.kind = ArtifactKind.TFLITE

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], provenance: tuple[PassRecord, ...] = ()) -> TfliteModel:
        """Open a .tflite file (its identifier and tables are checked)."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file {path} does not exist", "check the path")
        summary = read_summary(path)
        return cls(path=path, sha256=sha256_file(path), provenance=provenance, _summary=summary)

    @property
    def summary_info(self) -> TfliteSummary:
        if self._summary is None:
            if self.path is None:
                raise ModelFileError("this TFLite artifact has no file", "convert the model first")
            self._summary = read_summary(self.path)
        return self._summary

    @property
    def metadata(self) -> dict[str, Any]:
        """What edgeopt recorded at conversion (precision, I/O layout and dtype), empty for foreign files."""
        return dict(self.summary_info.metadata)

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(t.name, t.shape, t.dtype) for t in self.summary_info.inputs]

    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec(t.name, t.shape, t.dtype) for t in self.summary_info.outputs]

    def op_histogram(self) -> dict[str, int]:
        return dict(self.summary_info.ops)

    def summary(self) -> dict[str, Any]:
        """The facts `edgeopt inspect` shows."""
        meta = self.metadata
        return {
            "kind": self.kind.value,
            "path": str(self.path),
            "sha256": self.sha256,
            "inputs": [s.to_dict() for s in self.input_specs()],
            "outputs": [s.to_dict() for s in self.output_specs()],
            "ops": self.op_histogram(),
            "parameters": None,
            "size_bytes": self.size_bytes(),
            "precision": meta.get("precision"),
            "io_layout": meta.get("io_layout"),
        }
