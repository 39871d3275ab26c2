"""Backends: one per target runtime (ONNX Runtime, LiteRT, TensorRT, and PyTorch eager as the reference)."""

from edgeopt.backends.base import Backend, Runner, get_backend, reference_runner, register_backend, run_batched

__all__ = ["Backend", "Runner", "get_backend", "reference_runner", "register_backend", "run_batched"]
