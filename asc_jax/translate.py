"""Command line: train a device translator and report it against the identity on held-out pairs.

  python -m asc_jax.translate --config=configs/translator.py --workdir=/tmp/asc_translator

The workdir then holds the translator (asc_jax.translation.store) that classifier training uses
through --config.augment.translation_workdir=DIR --config.augment.translation_p=P.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from asc_jax.translation import fit

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Translator config (configs/translator.py[:variant]).', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for the translator and its report.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if _CONFIG.value is None or _WORKDIR.value is None:
    raise app.UsageError('--config and --workdir are required, e.g. '
                         '--config=configs/translator.py --workdir=/tmp/asc_translator')
  fit.train_translator(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  app.run(main)
