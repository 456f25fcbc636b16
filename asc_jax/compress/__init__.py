"""Model compression: knowledge distillation and magnitude pruning (quantization comes later)."""
