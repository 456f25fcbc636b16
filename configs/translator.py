"""Re-exports asc_jax/configs/translator.py (installed with the package; see its docstring)."""

from asc_jax.configs.translator import get_config  # noqa: F401
