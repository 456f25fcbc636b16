"""Re-exports asc_jax/configs/bcresnet.py (installed with the package; see its docstring)."""

from asc_jax.configs.bcresnet import get_config  # noqa: F401
