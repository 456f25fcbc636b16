"""Re-exports asc_jax/configs/quickstart.py (installed with the package; see its docstring)."""

from asc_jax.configs.quickstart import get_config  # noqa: F401
