"""LiteRT (TFLite) backend: a native ONNX -> .tflite lowering (no TensorFlow) and the LiteRT runner."""
