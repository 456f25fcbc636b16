"""Re-exports asc_jax/configs/compress.py (installed with the package; see its docstring)."""

from asc_jax.configs.compress import get_config  # noqa: F401
