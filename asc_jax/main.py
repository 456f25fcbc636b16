"""Command line: train and evaluate, or re-evaluate a trained workdir.

  python -m asc_jax.main --config=configs/quickstart.py --workdir=/tmp/asc_quickstart
  python -m asc_jax.main --config=configs/bcresnet.py:mod8 --workdir=DIR \
      --config.data.manual_dir=/data/TAU-urban-acoustic-scenes-2020-mobile-development
  python -m asc_jax.main --workdir=DIR --mode=evaluate      # uses DIR/config.json

Installed as the `asc-jax-train` command. The console shows progress bars, notes, warnings
and the final table; `--verbosity=0` adds the INFO log, which always goes to DIR/log.txt.
"""

from absl import app
from absl import flags
from absl import logging
import jax

from asc_jax import configs
from asc_jax import console
from asc_jax import defaults
from asc_jax import distributed
from asc_jax import host_devices
from asc_jax import host_memory
from asc_jax import train

_CONFIG = configs.define_config_flag(
    'config', None, 'Experiment config file[:variant]: configs/NAME.py, or NAME for a packaged '
    'config (asc_jax/configs).')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and reports.')
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'evaluate'],
                          'train: train (resuming if the workdir has checkpoints) and evaluate; '
                          'evaluate: re-evaluate the workdir\'s latest checkpoint.')
_WHICH = flags.DEFINE_enum('checkpoint', 'latest', ['latest', 'best'],
                           'Which checkpoint --mode=evaluate scores.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if _WORKDIR.value is None:
    raise app.UsageError('--workdir is required.')
  console.setup()
  config = _CONFIG.value
  # Before anything touches jax devices; --mode=evaluate reads the environment only.
  host_split = host_devices.split_host(config) if config is not None else None
  distributed.initialize(config.distributed if config is not None
                         else defaults.distributed_section())
  console.log_to_file(_WORKDIR.value, jax.process_index())
  if host_split:
    logging.info('this CPU host runs as %d XLA devices (%s=1 for one)', host_split,
                 host_devices.COUNT_VARIABLE)
  if _MODE.value == 'evaluate':
    train.evaluate_workdir(_WORKDIR.value, _WHICH.value)
    return
  if config is None:
    raise app.UsageError('--config is required for training, e.g. --config=configs/quickstart.py')
  train.enable_compilation_cache(config.train.compilation_cache_dir)
  train.train_and_evaluate(config, _WORKDIR.value)


if __name__ == '__main__':
  host_memory.reexec_with_huge_pages()
  app.run(main)
