"""`edgeopt demo`: train a small CNN on scikit-learn's bundled digits and compile it for every target here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.api import CompileResult
from edgeopt.api import compile as compile_model
from edgeopt.fileio import atomic_path, ensure_writable_dir
from edgeopt.progress import Progress
from edgeopt.targets import list_targets


def demo_targets() -> list[str]:
    """Targets whose backend runs on this machine (TensorRT is listed but skipped without a GPU)."""
    return [name for name, t in list_targets().items() if t.availability() is None]


def run_demo(out: Path, progress: bool = True, epochs: int = 20) -> CompileResult:
    """Train (seconds), save the model as a torch.export .pt2 and the test split as .npz, then compile both."""
    import torch

    from edgeopt.models.digits import train_digits_cnn

    prog = Progress(enabled=progress)
    ensure_writable_dir(out)
    with prog.step("train a CNN on scikit-learn digits"):
        model, x_test, y_test = train_digits_cnn(seed=0, epochs=epochs)
    data_path = out / "data" / "digits_test.npz"
    ensure_writable_dir(data_path.parent)
    with atomic_path(data_path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, x=x_test, y=y_test)
    model_path = out / "model" / "digits_cnn.pt2"
    ensure_writable_dir(model_path.parent)
    with prog.step("save the trained model (torch.export .pt2)"):
        batch = torch.export.Dim("batch", min=1, max=65536)
        ep = torch.export.export(model, (torch.from_numpy(x_test[:2]),), dynamic_shapes=({0: batch},))
        with atomic_path(model_path) as tmp:
            torch.export.save(ep, str(tmp))
    targets = demo_targets()
    options: dict[str, Any] = {"quantize": "static", "calibration": str(data_path)} if _has_quantization() else {}
    result = compile_model(
        str(model_path), target=targets, data=str(data_path), out=str(out), progress=progress, **options
    )
    if progress and result.report is not None:
        from edgeopt.report.markdown import render_markdown

        sys.stdout.write(render_markdown(result.report).split("\n## ")[0] + "\n")
        prog.info(f"wrote {out / 'report.json'}")
    return result


def _has_quantization() -> bool:
    try:
        import edgeopt.passes.onnx.quantize  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True
