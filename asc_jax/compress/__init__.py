"""Model compression: distillation, magnitude pruning, int8 quantization, export, pipeline."""
