"""asc_jax: low-complexity acoustic scene classification on device-imbalanced data in JAX/Flax."""

__version__ = "0.1.0"
