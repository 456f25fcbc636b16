"""The experiment configs, installed with the package, and the `--config` flag that finds them.

Each module here has `get_config(arg)`; `arg` picks a variant (`--config=FILE.py:VARIANT`):

  bcresnet          the paper system and its ablations on TAU Urban Acoustic Scenes 2020 Mobile
  quickstart        BC-ResNet-Mod-2 on the embedded synthetic_scenes data (`tiny`: seconds)
  teacher           wider networks to distil from
  compress          pruning + int8 quantization + distillation of a trained run
  translator        the device translator
  device_ablation   ResNorm / translation / Freq-MixStyle ablation on synthetic_scenes
  real_audio        BC-ResNet-Mod-2 on the real-audio device benchmark (benchmarks/real_audio)

The repository's top-level `configs/NAME.py` files re-export these (`from asc_jax.configs.NAME
import get_config`), so `--config=configs/NAME.py` in a checkout and `from asc_jax.configs
import NAME` in code load the same thing.

`define_config_flag` is `ml_collections.config_flags.DEFINE_config_file` that also accepts the
packaged copies: a `--config` path that is no file is looked up here by its base name, so
`--config=configs/quickstart.py:tiny`, `--config=asc_jax/configs/quickstart.py:tiny` and
`--config=quickstart:tiny` all work from any directory once the package is installed. A file
that exists (your own config, or a checkout's `configs/`) always wins.
"""

import os
from typing import Optional

from absl import flags
from ml_collections import config_flags

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
NAMES = ('bcresnet', 'compress', 'device_ablation', 'quickstart', 'real_audio', 'teacher',
         'translator')


def packaged_path(name: str) -> str:
  """The installed file of config `name` ('quickstart' or 'quickstart.py')."""
  name = os.path.basename(name)
  name = name[:-3] if name.endswith('.py') else name
  if name not in NAMES:
    raise ValueError(f'no packaged config {name!r}; the packaged configs are '
                     f'{", ".join(NAMES)} (or give the path of a config file).')
  return os.path.join(PACKAGE_DIR, f'{name}.py')


def resolve(spec: str) -> str:
  """`PATH[:VARIANT]` with PATH replaced by the packaged copy when no file PATH exists."""
  path, colon, variant = spec.partition(':')
  if not path or os.path.isfile(path):
    return spec
  base = os.path.basename(path)
  base = base[:-3] if base.endswith('.py') else base
  if base not in NAMES:
    return spec   # config_flags then reports the missing file.
  return packaged_path(base) + colon + variant


class _PackagedConfigParser(flags.ArgumentParser):
  """Wraps config_flags' file parser: the path is `resolve`d first."""

  def __init__(self, file_parser: flags.ArgumentParser):
    self._file_parser = file_parser

  def parse(self, argument):
    return self._file_parser.parse(resolve(argument) if isinstance(argument, str) else argument)

  def flag_type(self) -> str:
    return self._file_parser.flag_type()


def define_config_flag(name: str = 'config', default: Optional[str] = None,
                       help_string: str = 'Experiment config file[:variant] (configs/NAME.py, '
                                          'or a packaged config by NAME).',
                       lock_config: bool = True) -> flags.FlagHolder:
  """A `--config` flag (with `--config.key=value` overrides) that finds the packaged configs."""
  holder = config_flags.DEFINE_config_file(
      name, resolve(default) if default else None, help_string, lock_config=lock_config)
  flag = flags.FLAGS[name]
  flag.parser = _PackagedConfigParser(flag.parser)
  return holder
