"""Test set-up: eight forced CPU devices, so multi-device code runs for real on any machine.

XLA_FLAGS must be set before jax is imported anywhere; pytest imports this file first.
"""

import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
