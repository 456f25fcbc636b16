"""Re-exports asc_jax/configs/teacher.py (installed with the package; see its docstring)."""

from asc_jax.configs.teacher import get_config  # noqa: F401
