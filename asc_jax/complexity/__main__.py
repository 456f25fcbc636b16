"""python -m asc_jax.complexity: the complexity report of a config, a trained workdir or an export.

  python -m asc_jax.complexity --config=configs/bcresnet.py:mod8 [--workdir=DIR] [--json]
  python -m asc_jax.complexity --export=DIR/export   (an int8 export, python -m asc_jax.compress)
"""

import json
from typing import Any, Optional

from absl import app
from absl import flags
import ml_collections

from asc_jax import complexity
from asc_jax import configs
from asc_jax import console
from asc_jax import inference
from asc_jax import run_files
from asc_jax.compress import export
from asc_jax.compress import int8_runtime


def report_for_config(config: ml_collections.ConfigDict, workdir: str = '',
                      which: str = 'latest', export_dir: str = '') -> dict[str, Any]:
  """The complexity report of config's model: as stored in `export_dir` (an int8 export) or in
  `workdir` (its int8 export when it holds one, else its checkpoint) if given, else dense."""
  if not export_dir and workdir:
    export_dir = export.find_export(workdir) or ''
  if export_dir:
    variables = int8_runtime.Int8Model.load(export_dir).variables
  elif workdir:
    variables = inference.load_variables(workdir, which)
  else:
    return complexity.dense_report(config)
  return complexity.measure(variables, config.model, complexity.input_shape(config.features))


def define_flags() -> None:
  """The command's flags (defined when run as a program)."""
  configs.define_config_flag('config', None, 'Experiment config file[:variant] (or a packaged '
                             'config NAME); default with --workdir: the config stored there.')
  flags.DEFINE_string('workdir', '', 'Measure the model stored in this workdir.')
  flags.DEFINE_enum('which', 'latest', ['latest', 'best'], 'Checkpoint of --workdir.')
  flags.DEFINE_string('export', '', 'Measure this int8 export directory (python -m asc_jax.compress); '
                      'a --workdir holding one is measured through it.')
  flags.DEFINE_bool('json', False, 'Print the report as JSON instead of a table.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  console.setup()
  config: Optional[ml_collections.ConfigDict] = flags.FLAGS.config
  workdir, export_dir = flags.FLAGS.workdir, flags.FLAGS.export
  if config is None and export_dir:
    manifest = int8_runtime.read_manifest(export_dir)
    config = ml_collections.ConfigDict(dict(model=manifest['model'],
                                            features=manifest['feature_params']))
  if config is None:
    if not workdir:
      raise app.UsageError('give --config=configs/bcresnet.py:VARIANT, or --workdir of a trained run.')
    config = run_files.load_config(workdir)
  report = report_for_config(config, workdir, flags.FLAGS.which, export_dir)
  print(json.dumps(report, indent=2) if flags.FLAGS.json else complexity.format_table(report))


if __name__ == '__main__':
  define_flags()
  app.run(main)
