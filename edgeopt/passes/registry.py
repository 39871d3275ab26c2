"""The one registry of passes: registered by decorator, looked up by name or by the kinds they connect."""

from __future__ import annotations

import difflib
import importlib
from typing import TypeVar

from edgeopt.artifacts.base import ArtifactKind
from edgeopt.errors import ConfigError
from edgeopt.passes.base import Pass

P = TypeVar("P", bound=type[Pass])

_PASS_MODULES = (
    "edgeopt.passes.torch.export_onnx",
    "edgeopt.passes.onnx.simplify",
    "edgeopt.passes.onnx.ort_optimize",
    "edgeopt.passes.onnx.fuse_transformer",
    "edgeopt.passes.onnx.batch",
    "edgeopt.passes.onnx.fp16_typed",
)


class PassRegistry:
    """Maps pass names to pass classes."""

    def __init__(self) -> None:
        self._passes: dict[str, type[Pass]] = {}
        self._loaded = False

    def register(self, cls: P) -> P:
        """Class decorator: add a pass class under its `name`."""
        if cls.name in self._passes and self._passes[cls.name] is not cls:
            raise ValueError(f"pass name '{cls.name}' registered twice")
        self._passes[cls.name] = cls
        return cls

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in _PASS_MODULES:
                importlib.import_module(mod)
            for mod in _optional_pass_modules():
                try:
                    importlib.import_module(mod)
                except ModuleNotFoundError as exc:
                    if exc.name != mod:
                        raise

    def names(self) -> list[str]:
        self._load()
        return sorted(self._passes)

    def get(self, name: str) -> type[Pass]:
        """Look a pass up by name, suggesting the closest name on a typo."""
        self._load()
        if name not in self._passes:
            close = difflib.get_close_matches(name, self._passes, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "known passes: " + ", ".join(self.names())
            raise ConfigError(f"unknown pass '{name}'", hint)
        return self._passes[name]

    def converter(self, src: ArtifactKind, dst: ArtifactKind) -> type[Pass] | None:
        """The default pass converting kind `src` to `dst` (declared by `converts = True` on the class)."""
        self._load()
        for name in sorted(self._passes):
            cls = self._passes[name]
            if getattr(cls, "converts", False) and cls.input_kind == src and cls.output_kind == dst:
                return cls
        return None


def _optional_pass_modules() -> tuple[str, ...]:
    """Pass modules added by later features; missing ones are skipped, broken ones raise."""
    return (
        "edgeopt.passes.onnx.quantize",
        "edgeopt.passes.onnx.qdq_tensorrt",
        "edgeopt.passes.torch.prune",
        "edgeopt.passes.torch.distill",
        "edgeopt.backends.tflite.lower_pass",
    )


REGISTRY = PassRegistry()
register_pass = REGISTRY.register
