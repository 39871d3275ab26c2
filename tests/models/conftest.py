"""Shared helpers for the reference-network tests: ONNX export (dynamo) and a parity check against ONNX Runtime."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

OnnxCheck = Callable[[torch.nn.Module, tuple[int, ...]], np.ndarray]


@pytest.fixture
def onnx_parity(tmp_path: Path) -> OnnxCheck:
    """Export a module with torch.onnx.export(dynamo=True), dynamic batch; assert ORT matches torch within 1e-4."""
    import onnxruntime as ort

    def check(model: torch.nn.Module, shape: tuple[int, ...]) -> np.ndarray:
        gen = torch.Generator().manual_seed(0)
        example = torch.randn(2, *shape[1:], generator=gen)
        path = tmp_path / "model.onnx"
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            verbose=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
        # A different batch size than the export example proves the batch dim stayed dynamic.
        x = torch.randn(3, *shape[1:], generator=gen)
        with torch.no_grad():
            expected = model(x).numpy()
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
        return got

    return check
