"""The one place that imports TensorRT: None when it is missing (or only a same-named folder is on sys.path)."""

from __future__ import annotations

from types import ModuleType


def import_tensorrt() -> ModuleType | None:
    """The real `tensorrt` module, or None; a namespace folder called tensorrt does not count."""
    try:
        import tensorrt as trt
    except ImportError:
        return None
    return trt if hasattr(trt, "Builder") and hasattr(trt, "__version__") else None
