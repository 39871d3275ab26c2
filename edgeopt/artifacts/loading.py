"""Open any supported model reference: an .onnx file, a .pt2 file, or package.module:factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeopt.artifacts.base import Artifact, ArtifactKind, TensorSpec
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.artifacts.torch_model import TorchModel, load_factory, load_pt, load_pt2
from edgeopt.errors import ModelFileError


def load_model(model: Any, input_specs: list[TensorSpec] | None = None) -> Artifact:
    """Turn a path, factory string, nn.Module or artifact into an artifact (never modifies the source)."""
    if isinstance(model, (OnnxModel, TorchModel)):
        return model
    if isinstance(model, (str, Path)):
        text = str(model)
        path = Path(text)
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            return OnnxModel.from_file(path)
        if suffix == ".tflite":
            if not path.is_file():
                raise ModelFileError(f"model file {path} does not exist", "check the path")
            return open_artifact(ArtifactKind.TFLITE, path)
        if suffix in (".pt2", ".pt", ".pth"):
            if not path.is_file():
                raise ModelFileError(f"model file {path} does not exist", "check the path")
            if suffix == ".pt2":
                return load_pt2(path, input_specs)
            load_pt(path)
        if ":" in text and not path.exists():
            return load_factory(text, input_specs)
        if not path.exists():
            raise ModelFileError(f"model file {path} does not exist", "check the path")
        raise ModelFileError(
            f"cannot tell what kind of model {path} is",
            "pass an .onnx file, a torch.export .pt2 file, or package.module:factory",
        )
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        torch = None
    if torch is not None and isinstance(model, torch.nn.Module):
        specs = input_specs or list(getattr(model, "edgeopt_inputs", []) or [])
        if not specs:
            raise ModelFileError(
                "the input shape of the nn.Module is unknown",
                "pass example_inputs=torch.randn(1, 3, 224, 224) (or input_shapes)",
            )
        return TorchModel.from_module(model, specs)
    raise ModelFileError(f"cannot compile an object of type {type(model).__name__}", "pass an nn.Module or a path")


def open_artifact(kind: ArtifactKind, path: Path) -> Artifact:
    """Open a pass output of a known kind from disk."""
    if kind == ArtifactKind.ONNX:
        return OnnxModel.from_file(path)
    if kind == ArtifactKind.TORCH:
        return load_pt2(path, None)
    if kind == ArtifactKind.TFLITE:
        from edgeopt.backends.tflite.artifact import TfliteModel

        return TfliteModel.from_file(path)
    if kind == ArtifactKind.TRT_ENGINE:
        from edgeopt.backends.tensorrt.artifact import TrtEngine

        return TrtEngine.from_file(path)
    raise ValueError(f"no opener for artifact kind {kind}")
