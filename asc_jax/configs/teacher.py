"""Teachers for knowledge distillation: wider BC-ResNet-Mod networks trained like their students.

Variants by argument:
  small (default)  BC-ResNet-Mod-12 on synthetic_scenes/small (configs/quickstart.py's data)
  tau              BC-ResNet-Mod-16 on TAU Urban Acoustic Scenes 2020 Mobile (configs/bcresnet.py)
  tiny             BC-ResNet-Mod-2 on synthetic_scenes/tiny (tests)
An ensemble is several runs (e.g. --config.seed=1, 2, ...) passed together as
--teacher_workdir=A,B to python -m asc_jax.compress (their logits are averaged).

  python -m asc_jax.main --config=configs/teacher.py:small --workdir=/tmp/teacher
"""

from asc_jax.configs import bcresnet
from asc_jax.configs import quickstart

WIDTHS = {'small': 12.0, 'tau': 16.0, 'tiny': 2.0}



def get_config(arg: str = 'small'):
  if arg not in WIDTHS:
    raise ValueError(f'configs/teacher.py: unknown variant {arg!r}; choose one of '
                     f'{", ".join(WIDTHS)}.')
  if arg == 'tau':
    config = bcresnet.get_config('mod8')
  else:
    config = quickstart.get_config('tiny' if arg == 'tiny' else 'resnorm')
  config.model.width = WIDTHS[arg]
  return config
