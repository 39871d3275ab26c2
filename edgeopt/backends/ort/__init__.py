"""ONNX Runtime CPU backend."""
