"""edgeopt: compile a trained model into verified, measured edge builds (ONNX Runtime, LiteRT, TensorRT)."""

from edgeopt.api import CompileResult, compile
from edgeopt.config import CompileConfig
from edgeopt.errors import EdgeoptError
from edgeopt.pipeline import Pipeline

__version__ = "0.1.0"
__all__ = ["CompileConfig", "CompileResult", "EdgeoptError", "Pipeline", "__version__", "compile"]
