"""Re-exports asc_jax/configs/real_audio.py (installed with the package; see its docstring)."""

from asc_jax.configs.real_audio import get_config  # noqa: F401
