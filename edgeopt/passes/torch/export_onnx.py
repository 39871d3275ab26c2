"""torch -> ONNX export: the dynamo exporter first, the TorchScript exporter as fallback; dynamic batch axis."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from pathlib import Path
from typing import Any, Literal

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.artifacts.torch_model import TorchModel
from edgeopt.errors import ModelFileError
from edgeopt.passes.base import Pass, PassConfig, PassContext
from edgeopt.passes.registry import register_pass

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(exc: Exception) -> str:
    """`Type: first line of the message`, without the terminal colour codes torch puts in its export errors."""
    text = _ANSI.sub("", str(exc))
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


class ExportOnnxConfig(PassConfig):
    """Exporter settings."""

    opset: int = 18
    dynamic_batch: bool = True
    exporter: Literal["auto", "dynamo", "torchscript"] = "auto"
    example_batch: int = 2


@contextlib.contextmanager
def _quiet_exporter() -> Any:
    """The exporters print registration chatter and deprecation warnings; keep the user's console clean."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels, strict=True):
            lg.setLevel(lvl)


@register_pass
class ExportOnnx(Pass):
    """Export a PyTorch module to a single-file ONNX model."""

    name = "export_onnx"
    version = "1"
    input_kind = ArtifactKind.TORCH
    output_kind = ArtifactKind.ONNX
    Config = ExportOnnxConfig
    converts = True
    check_tolerance = (1e-4, 0.99999)
    tools = ("torch", "onnx", "onnxscript")

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        import torch

        if not isinstance(model, TorchModel):
            raise TypeError("export_onnx takes a TorchModel")
        cfg: ExportOnnxConfig = self.config  # type: ignore[assignment]
        specs = model.input_specs()
        batch = cfg.example_batch if cfg.dynamic_batch else 1
        args = tuple(torch.from_numpy(a) for a in model.random_inputs(batch=batch, seed=ctx.seed).values())
        names = [s.name for s in specs]
        errors: list[str] = []
        if cfg.exporter in ("auto", "dynamo"):
            try:
                with _quiet_exporter():
                    dyn = None
                    if cfg.dynamic_batch:
                        dim = torch.export.Dim("batch", min=1, max=65536)
                        dyn = tuple({0: dim} for _ in specs)
                    prog = torch.onnx.export(
                        model.module,
                        args,
                        dynamo=True,
                        input_names=names,
                        opset_version=cfg.opset,
                        dynamic_shapes=dyn,
                        optimize=True,
                        verbose=False,
                        external_data=False,
                    )
                    prog.save(str(out_path), external_data=False)
                return OnnxModel.from_file(out_path)
            except Exception as exc:  # noqa: BLE001 - the fallback exporter gets its chance
                errors.append(f"dynamo: {_first_line(exc)}")
                log.info("dynamo export failed (%s); trying the TorchScript exporter", errors[-1])
        if cfg.exporter in ("auto", "torchscript"):
            try:
                with _quiet_exporter():
                    axes = {n: {0: "batch"} for n in names} if cfg.dynamic_batch else None
                    torch.onnx.export(
                        model.module,
                        args,
                        str(out_path),
                        dynamo=False,
                        input_names=names,
                        opset_version=min(cfg.opset, 17),
                        dynamic_axes=axes,
                        do_constant_folding=True,
                    )
                return OnnxModel.from_file(out_path)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"torchscript: {_first_line(exc)}")
        raise ModelFileError(
            "the model could not be exported to ONNX (" + " | ".join(errors) + ")",
            "make the module exportable (see torch.export docs) or export it to .onnx yourself",
        )
