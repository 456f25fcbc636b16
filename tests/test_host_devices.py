"""The training command's split of a CPU host into XLA devices (asc_jax/host_devices.py)."""

import os
import subprocess
import sys

import ml_collections
import pytest

from asc_jax import host_devices

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(batch=64, eval_batch=128, **distributed):
  return ml_collections.ConfigDict(dict(
      train=dict(batch_size=batch, eval_batch_size=eval_batch),
      distributed=dict(dict(num_processes=0, coordinator_address=''), **distributed)))


def test_default_is_two_devices_on_two_or_more_cores():
  assert host_devices.host_device_count(config(), {}, cores=2) == 2
  assert host_devices.host_device_count(config(), {}, cores=16) == 2
  assert host_devices.host_device_count(config(), {}, cores=1) == 1
  assert host_devices.host_device_count(config(), {'JAX_PLATFORMS': 'cpu'}, cores=2) == 2


def test_only_counts_that_divide_both_batches():
  environ = {host_devices.COUNT_VARIABLE: '8'}
  assert host_devices.host_device_count(config(64, 128), environ, cores=2) == 8
  assert host_devices.host_device_count(config(6, 100), environ, cores=2) == 2
  assert host_devices.host_device_count(config(64, 100), environ, cores=2) == 4
  assert host_devices.host_device_count(config(25, 128), {}, cores=2) == 1


def test_leaves_xla_alone_where_it_should():
  flag = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}
  assert host_devices.host_device_count(config(), flag, cores=2) is None
  assert host_devices.host_device_count(config(), {'JAX_PLATFORMS': 'cuda'}, cores=2) is None
  assert host_devices.host_device_count(config(num_processes=2), {}, cores=2) is None
  assert host_devices.host_device_count(config(coordinator_address='h:1234'), {},
                                        cores=2) is None
  assert host_devices.host_device_count(config(), {host_devices.COUNT_VARIABLE: '1'},
                                        cores=2) == 1


def test_a_bad_count_names_the_variable():
  with pytest.raises(ValueError, match='ASC_JAX_HOST_DEVICES=.two.'):
    host_devices.host_device_count(config(), {host_devices.COUNT_VARIABLE: 'two'}, cores=2)


def test_the_split_takes_effect_after_the_command_imports():
  """In a fresh interpreter without XLA_FLAGS: the training command's modules are imported first
  (none of them may start a JAX backend), then the split gives jax two CPU devices."""
  script = ('import asc_jax.main, jax\n'
            'from asc_jax import host_devices\n'
            'from asc_jax.configs import quickstart\n'
            'print(host_devices.split_host(quickstart.get_config()), jax.device_count())\n')
  environ = {key: value for key, value in os.environ.items()
             if key not in ('XLA_FLAGS', host_devices.COUNT_VARIABLE)}
  environ.update(JAX_PLATFORMS='cpu', ASC_JAX_HOST_DEVICES='2')
  done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                        cwd=REPO, env=environ, timeout=300)
  assert done.returncode == 0, done.stderr
  assert done.stdout.split() == ['2', '2']
