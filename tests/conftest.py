"""Test set-up: eight forced CPU devices, so multi-device code runs for real on any machine.

XLA_FLAGS must be set before jax is imported anywhere; pytest imports this file first.
"""

import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

import pytest  # noqa: E402  (after the XLA flags on purpose)


def load_script(path: str):
  """The file at `path` run as a module, its own folder importable while it loads (as when
  started with `python path`)."""
  import importlib.util
  import sys
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  folder = os.path.dirname(os.path.abspath(path))
  sys.path.insert(0, folder)
  try:
    spec.loader.exec_module(module)
  finally:
    sys.path.remove(folder)
  return module


def load_config_file(path: str, arg: str):
  """get_config(arg) of a config file, as the command line would load it."""
  return load_script(path).get_config(arg)


@pytest.fixture(scope='session')
def tiny_data_dir(tmp_path_factory):
  """A data_dir holding the real synthetic_scenes/tiny TFDS build, made once per test session."""
  from asc_jax.data import datasets
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  config = tiny_config(data_dir)
  datasets.prepare(config)
  return data_dir


def tiny_config(data_dir: str):
  """configs/quickstart.py:tiny reading from `data_dir`, with one feature-extraction worker."""
  config = load_config_file(os.path.join(os.path.dirname(__file__), '..', 'configs',
                                         'quickstart.py'), 'tiny')
  config.data.data_dir = data_dir
  config.data.num_workers = 1
  config.train.compilation_cache_dir = ''
  return config
