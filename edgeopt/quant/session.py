"""ONNX Runtime sessions for calibration, evaluation and timing inside the quantization passes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgeopt.backends.ort.backend import OptLevel, Spinning, session_options

_TWO_GB = 2**31 - 1


def ort_session(model: onnx.ModelProto | Path | str, threads: int | None = None, level: OptLevel = "all",
                optimized_path: str | None = None, spinning: Spinning = "during_run") -> ort.InferenceSession:
    """A CPU session with pinned threads on a model file or an in-memory model."""
    so = session_options(threads, level, optimized_path=optimized_path, spinning=spinning)
    if isinstance(model, onnx.ModelProto):
        if model.ByteSize() > _TWO_GB:
            raise ValueError("models over 2 GB must be passed as a file path")
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])


def fixed_batch(session: ort.InferenceSession) -> int | None:
    """The batch size the model's first input fixes, or None when the batch dim is free."""
    inputs = session.get_inputs()
    if not inputs or not inputs[0].shape:
        return None
    first = inputs[0].shape[0]
    return first if isinstance(first, int) and first > 0 else None


def feeds(session: ort.InferenceSession, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inputs cast to the dtypes the session expects."""
    types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(bool)": np.bool_}
    return {i.name: np.ascontiguousarray(inputs[i.name], dtype=types.get(i.type)) for i in session.get_inputs()}


def split(inputs: dict[str, np.ndarray], size: int | None) -> Iterator[dict[str, np.ndarray]]:
    """A batch cut into pieces of at most `size` samples (the whole batch when size is None)."""
    n = len(next(iter(inputs.values())))
    if size is None or n <= size:
        yield inputs
        return
    for start in range(0, n, size):
        yield {k: v[start : start + size] for k, v in inputs.items()}


def run(session: ort.InferenceSession, inputs: dict[str, np.ndarray], outputs: list[str] | None = None,
        max_batch: int | None = None) -> list[np.ndarray]:
    """Run a batch, splitting it for fixed-batch models and joining the outputs."""
    parts = [session.run(outputs, feeds(session, piece)) for piece in split(inputs, max_batch)]
    if len(parts) == 1:
        return list(parts[0])
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]
