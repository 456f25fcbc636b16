"""python -m asc_jax.compress: the compression pipeline of asc_jax/compress/run.py.

  python -m asc_jax.compress --config=configs/compress.py:mod8 --source_workdir=RUN \
      --workdir=RUN_compressed [--teacher_workdir=T1,T2 | --teacher_logits=DIR]
"""

from absl import app
from absl import flags

from asc_jax import configs
from asc_jax import console
from asc_jax import host_memory

configs.define_config_flag('config', configs.packaged_path('compress'),
                           'Compression config file[:variant]; default: the packaged '
                           'asc_jax/configs/compress.py (variant mod8).')
flags.DEFINE_string('source_workdir', None, 'Trained workdir to compress (only read).')
flags.DEFINE_string('workdir', None, 'New workdir for the compressed student.')
flags.DEFINE_list('teacher_workdir', [],
                  'Teacher workdir(s) for distillation; default: the source.')
flags.DEFINE_string('teacher_logits', '', 'Directory of already exported teacher logits.')
flags.DEFINE_enum('which', 'latest', ['latest', 'best'], 'Checkpoint of --source_workdir.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  values = flags.FLAGS
  if not values.source_workdir or not values.workdir:
    raise app.UsageError('give --source_workdir=TRAINED_RUN and --workdir=NEW_DIR.')
  console.setup(values.workdir)
  from asc_jax import train   # Imported here: --help must not load the model stack.
  from asc_jax.compress import run
  train.enable_compilation_cache(values.config.get('compilation_cache_dir', ''))
  report = run.run(values.config, values.source_workdir, values.workdir,
                   values.teacher_workdir, values.teacher_logits, values.which)
  if report is None:
    print('stopped early: run the same command again to resume.')
  elif 'export' in report:
    print(run.format_markdown(report))


if __name__ == '__main__':
  host_memory.reexec_with_huge_pages()
  app.run(main)
