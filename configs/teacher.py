"""Teachers for knowledge distillation: wider BC-ResNet-Mod networks trained like their students.

Variants by argument:
  small (default)  BC-ResNet-Mod-12 on synthetic_scenes/small (configs/quickstart.py's data)
  tau              BC-ResNet-Mod-16 on TAU Urban Acoustic Scenes 2020 Mobile (configs/bcresnet.py)
  tiny             BC-ResNet-Mod-2 on synthetic_scenes/tiny (tests)
An ensemble is several runs (e.g. --config.seed=1, 2, ...) passed together as
--teacher_workdir=A,B to python -m asc_jax.compress (their logits are averaged).

  python -m asc_jax.main --config=configs/teacher.py:small --workdir=/tmp/teacher
"""

import importlib.util
import os

WIDTHS = {'small': 12.0, 'tau': 16.0, 'tiny': 2.0}


def _config_file(name: str, arg: str):
  """get_config(arg) of another file in configs/ (config files are not a package)."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
  spec = importlib.util.spec_from_file_location(f'asc_jax_configs_{name[:-3]}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def get_config(arg: str = 'small'):
  if arg not in WIDTHS:
    raise ValueError(f'configs/teacher.py: unknown variant {arg!r}; choose one of '
                     f'{", ".join(WIDTHS)}.')
  if arg == 'tau':
    config = _config_file('bcresnet.py', 'mod8')
  else:
    config = _config_file('quickstart.py', 'tiny' if arg == 'tiny' else 'resnorm')
  config.model.width = WIDTHS[arg]
  return config
