"""Networks: BC-ResNet, BC-ResNet-Mod and their normalizations."""
