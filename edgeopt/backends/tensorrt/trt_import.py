"""The one place that imports TensorRT: None when it is missing (or only a same-named folder is on sys.path), and the
one statement of which TensorRT versions edgeopt builds engines with."""

from __future__ import annotations

from types import ModuleType

#: The TensorRT major version edgeopt's weakly typed build (target trt-gpu) is written for. TensorRT 10 takes the
#: model's float precision from builder flags (FP16, INT8) over an FP32 ONNX; TensorRT 11 removed those flags and builds
#: every network strongly typed, from the precision written in the ONNX itself, so an FP32 ONNX would build FP32 there.
SUPPORTED_MAJOR = 10
#: The majors that build strongly typed networks (target trt-gpu-typed: FP16-typed ONNX, no precision flags).
STRONGLY_TYPED_MAJORS = (10, 11)
INSTALL_HINT = f'pip install "tensorrt>={SUPPORTED_MAJOR},<{SUPPORTED_MAJOR + 1}"'


def import_tensorrt() -> ModuleType | None:
    """The real `tensorrt` module, or None; a namespace folder called tensorrt does not count."""
    try:
        import tensorrt as trt
    except ImportError:
        return None
    return trt if hasattr(trt, "Builder") and hasattr(trt, "__version__") else None


def unsupported_version(version: str, strongly_typed: bool = False) -> str | None:
    """Why edgeopt cannot build engines with TensorRT `version` (e.g. '11.4.0.106'), or None when it can.
    `strongly_typed`: the build takes its precision from the ONNX types (target trt-gpu-typed)."""
    head = version.split(".", 1)[0]
    major = int(head) if head.isdigit() else None
    if major == SUPPORTED_MAJOR or (strongly_typed and major in STRONGLY_TYPED_MAJORS):
        return None
    if not strongly_typed and major in STRONGLY_TYPED_MAJORS:
        return (f"TensorRT {version} installed: it builds strongly typed networks only (no FP16/INT8 builder flags); "
                f"use --target trt-gpu-typed, or build with TensorRT {SUPPORTED_MAJOR} ({INSTALL_HINT})")
    return f"TensorRT {version} installed: edgeopt builds with TensorRT {SUPPORTED_MAJOR} ({INSTALL_HINT})"
