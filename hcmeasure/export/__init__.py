"""Export of trained models to portable formats (ONNX)."""
