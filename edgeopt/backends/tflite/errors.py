"""Errors of the ONNX -> TFLite lowering (subclasses of ConfigError: the CLI prints one line and exits 2)."""

from __future__ import annotations

import onnx

from edgeopt.errors import ConfigError


class UnsupportedOpError(ConfigError):
    """The model has ONNX ops (or op variants) the TFLite lowering does not handle."""

    def __init__(self, problem: str, fix: str, ops: list[tuple[str, str]] | None = None) -> None:
        super().__init__(problem, fix)
        self.ops = list(ops or [])


def unsupported_variant(
    node: onnx.NodeProto, what: str, fix: str = "rewrite this part of the model"
) -> UnsupportedOpError:
    """An op whose type is supported, used in a way the lowering does not handle."""
    label = node.name or node.op_type
    return UnsupportedOpError(f"{node.op_type} node '{label}': {what} is not supported by the TFLite lowering", fix,
                              [(node.op_type, label)])
