"""Command line: train a device translator and report it against the identity on held-out pairs.

  python -m asc_jax.translate --config=configs/translator.py --workdir=/tmp/asc_translator

The workdir then holds the translator (asc_jax.translation.store) that classifier training uses
through --config.augment.translation_workdir=DIR --config.augment.translation_p=P.
"""

from absl import app
from absl import flags

from asc_jax import configs
from asc_jax import console
from asc_jax import host_memory
from asc_jax.translation import fit

def define_flags() -> None:
  """Command-line flags; defined only when run as a program, so importing this module
  next to other command modules defines no clashing flags."""
  configs.define_config_flag('config', None,
                             'Translator config (configs/translator.py[:variant]).')
  flags.DEFINE_string('workdir', None, 'Directory for the translator and its report.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if flags.FLAGS.config is None or flags.FLAGS.workdir is None:
    raise app.UsageError('--config and --workdir are required, e.g. '
                         '--config=configs/translator.py --workdir=/tmp/asc_translator')
  console.setup(flags.FLAGS.workdir)
  fit.train_translator(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == '__main__':
  host_memory.reexec_with_huge_pages()
  define_flags()
  app.run(main)
