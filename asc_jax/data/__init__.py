"""Datasets: TFDS builders that serve log-mel features, and the Grain input pipeline."""
