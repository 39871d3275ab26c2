"""Typed, on-disk handles on models: content hash, provenance, I/O specs."""

from edgeopt.artifacts.base import Artifact, ArtifactKind, PassRecord, TensorSpec
from edgeopt.artifacts.loading import load_model
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.artifacts.torch_model import TorchModel

__all__ = ["Artifact", "ArtifactKind", "OnnxModel", "PassRecord", "TensorSpec", "TorchModel", "load_model"]
