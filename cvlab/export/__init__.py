"""Model export: Keras -> ONNX, ONNX -> TensorRT (with INT8 calibration), the demo model."""
