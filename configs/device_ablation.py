"""Re-exports asc_jax/configs/device_ablation.py (installed with the package; see its docstring)."""

from asc_jax.configs.device_ablation import get_config  # noqa: F401
