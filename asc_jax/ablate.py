"""Ablation sweeps: every combination of the swept config values times seeds, trained, summarised.

  python -m asc_jax.ablate --config=configs/quickstart.py --workdir=/tmp/asc_ablation \
      --sweep 'model.norm_lambda=0,0.1,0.5,1' --sweep 'train.learning_rate=0.05,0.1' --seeds 3

Each run trains with train.train_and_evaluate in WORKDIR/<variant>/seed_<seed>/; a run whose final
evaluation report exists is skipped, and an interrupted one resumes from its checkpoint, so the
same command picks a sweep up where it stopped. With every run done it writes
  ablation.csv  one row per variant and seed: overall, real, seen and unseen accuracy, log loss
  ablation.md   a markdown table of mean +- standard deviation over seeds per variant
  ablation.png  mean and spread (each seed a dot) of the accuracy per device group per variant
With --vmap the runs that differ only in their seed and in optimizer hyperparameters held in the
optimizer state (asc_jax.optim.VMAPPABLE_KEYS: train.learning_rate, train.weight_decay) train
together in one jax.vmap-ed program (asc_jax/vmap_sweep.py); other swept values change the
compiled program, so each of their combinations forms its own group.
"""

import copy
import csv
import dataclasses
import io
import itertools
import json
import os
from typing import Any, Optional, Sequence

import ml_collections
import numpy as np
from absl import app
from absl import flags
from matplotlib import figure as mpl_figure
import jax

from asc_jax import configs
from asc_jax import console
from asc_jax import distributed
from asc_jax import fileio
from asc_jax import host_memory
from asc_jax import optim
from asc_jax import reports
from asc_jax import run_files
from asc_jax import train
from asc_jax import vmap_sweep

GROUPS = ('real', 'seen', 'unseen')
CSV_COLUMNS = ('variant', 'seed', 'accuracy', *(f'{g}_accuracy' for g in GROUPS), 'log_loss')
BASE_VARIANT = 'base'


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of a sweep: a variant (its overrides) with one seed."""
  variant: str
  overrides: tuple[tuple[str, Any], ...]
  seed: int

  @property
  def directory(self) -> str:
    return os.path.join(self.variant, f'seed_{self.seed}')


def _field(config: ml_collections.ConfigDict, key: str) -> Any:
  node = config
  for part in key.split('.'):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise KeyError(f'--sweep key {key!r} is not in the config (no {part!r} there); sweep an '
                     'existing key such as model.norm_lambda or train.learning_rate.')
    node = node[part]
  return node


def _parse_value(key: str, text: str, current: Any) -> Any:
  """`text` as the type of the config's current value for `key`."""
  text = text.strip()
  if '/' in text or not text:
    raise ValueError(f'--sweep {key}: value {text!r} must be non-empty and hold no "/" (it names '
                     'a directory).')
  if isinstance(current, bool):
    if text.lower() not in ('true', 'false'):
      raise ValueError(f'--sweep {key}: {text!r} is not true or false.')
    return text.lower() == 'true'
  for kind in (int, float):
    if isinstance(current, kind):
      try:
        return kind(text)
      except ValueError:
        raise ValueError(f'--sweep {key}: {text!r} is not a valid {kind.__name__} (the config '
                         f'holds {current!r}).') from None
  if isinstance(current, (str, type(None))):
    return text
  raise ValueError(f'--sweep {key}: the config holds a {type(current).__name__}; only numbers, '
                   'booleans and strings can be swept.')


def parse_sweep(config: ml_collections.ConfigDict, text: str) -> tuple[str, list[Any]]:
  """'model.norm_lambda=0,0.1' -> ('model.norm_lambda', [0.0, 0.1]), typed like the config."""
  key, separator, values = text.partition('=')
  key = key.strip()
  if not separator or not values.strip():
    raise ValueError(f'--sweep {text!r} must look like key=value1,value2 '
                     '(e.g. model.norm_lambda=0,0.1,0.5,1).')
  if key == 'seed':
    raise ValueError('--sweep seed=... is not supported: use --seeds N.')
  current = _field(config, key)
  return key, [_parse_value(key, value, current) for value in values.split(',')]


def variant_name(overrides: Sequence[tuple[str, Any]]) -> str:
  return '__'.join(f'{key}={value}' for key, value in overrides) or BASE_VARIANT


def grid(config: ml_collections.ConfigDict, sweeps: Sequence[str], num_seeds: int) -> list[Run]:
  """Every combination of the sweeps' values (first sweep outermost), each with `num_seeds`
  seeds config.seed, config.seed + 1, ..."""
  if num_seeds < 1:
    raise ValueError(f'--seeds={num_seeds} must be at least 1.')
  parsed = [parse_sweep(config, text) for text in sweeps]
  keys = [key for key, _ in parsed]
  if len(set(keys)) != len(keys):
    raise ValueError(f'--sweep names a key twice: {keys}; give each key once with all its values.')
  runs = []
  for values in itertools.product(*(values for _, values in parsed)):
    overrides = tuple(zip(keys, values))
    runs += [Run(variant_name(overrides), overrides, config.seed + offset)
             for offset in range(num_seeds)]
  return runs


def run_config(config: ml_collections.ConfigDict, run: Run) -> ml_collections.ConfigDict:
  """A copy of `config` with the run's overrides and seed."""
  variant = copy.deepcopy(config)
  for key, value in run.overrides:
    *parents, leaf = key.split('.')
    node = variant
    for part in parents:
      node = node[part]
    node[leaf] = value
  variant.seed = run.seed
  return variant


def result_row(run: Run, metrics: dict) -> dict:
  """The CSV row of a finished run; a device group absent from the test split gives NaN."""
  groups = metrics.get('per_device_group', {})
  return {'variant': run.variant, 'seed': run.seed, 'accuracy': float(metrics['accuracy']),
          **{f'{group}_accuracy': float(groups[group]['accuracy']) if group in groups
             else float('nan') for group in GROUPS},
          'log_loss': float(metrics['log_loss'])}


def finished_metrics(run_dir: str) -> Optional[dict]:
  """The final evaluation report of a finished run, None while it is not finished."""
  path = reports.eval_report_path(run_dir)
  if not os.path.exists(path):
    return None
  with open(path, encoding='utf-8') as file:
    return json.load(file)


def program_key(run: Run) -> tuple[tuple[str, Any], ...]:
  """The run's overrides that change the compiled program: all but optim.VMAPPABLE_KEYS."""
  return tuple((key, value) for key, value in run.overrides if key not in optim.VMAPPABLE_KEYS)


def group_directory(workdir: str, runs: Sequence[Run]) -> str:
  """Where a vmapped group keeps its checkpoints: named after its variant and seeds."""
  seeds = '_'.join(str(run.seed) for run in runs)
  return os.path.join(workdir, 'vmap_groups', f'{runs[0].variant}_seeds_{seeds}')


def train_together(config: ml_collections.ConfigDict, workdir: str, runs: Sequence[Run]
                   ) -> Optional[dict[Run, dict]]:
  """Trains runs sharing one program_key in one vmapped program (asc_jax.vmap_sweep, resumable);
  writes each run's config, dataset description and final test report. None when stopped."""
  base = run_config(config, runs[0])
  dataset = distributed.prepare_dataset(base)
  members = [vmap_sweep.Member(run.seed, tuple((key, value) for key, value in run.overrides
                                               if key in optim.VMAPPABLE_KEYS)) for run in runs]
  group = vmap_sweep.RunGroup(base, dataset, members)
  result, _ = group.fit(group_directory(workdir, runs))
  if not result.completed:
    return None
  results = dict(zip(runs, group.evaluate(result.state)))
  if distributed.is_primary():
    for run, metrics in results.items():
      run_dir = os.path.join(workdir, run.directory)
      run_files.write_run_files(run_dir, run_config(config, run), run_files.dataset_info(dataset))
      reports.write_eval_report(run_dir, metrics, step=result.step, checkpoint='final')
  return results


def run_sweep(config: ml_collections.ConfigDict, workdir: str, runs: Sequence[Run],
              vmap: bool = False) -> Optional[list[dict]]:
  """Trains every unfinished run (with `vmap`, those sharing a program_key in one vmapped
  program); the CSV rows of all runs in grid order, or None when a stop signal ended a run early."""
  results = {run: finished_metrics(os.path.join(workdir, run.directory)) for run in runs}
  pending = [run for run in runs if results[run] is None]
  print(f'{len(runs) - len(pending)} of {len(runs)} runs already finished')
  groups: dict[tuple, list[Run]] = {}
  for run in pending:
    groups.setdefault(program_key(run) if vmap else (run,), []).append(run)
  for group in groups.values():
    if len(group) > 1:
      together = train_together(config, workdir, group)
      if together is None:
        print('a vmapped group stopped before the end; run the same command again to resume.')
        return None
      results.update(together)
      continue
    (run,) = group
    results[run] = train.train_and_evaluate(run_config(config, run),
                                            os.path.join(workdir, run.directory))
    if results[run] is None:
      print(f'{run.directory} stopped before the end; run the same command again to resume.')
      return None
  return [result_row(run, results[run]) for run in runs]


def summarize(rows: Sequence[dict]) -> list[dict]:
  """Per variant (in first-seen order): seed count, and mean and std (ddof=1; 0 for one seed)
  of every metric column."""
  variants = list(dict.fromkeys(row['variant'] for row in rows))
  summary = []
  for variant in variants:
    chosen = [row for row in rows if row['variant'] == variant]
    entry = {'variant': variant, 'seeds': len(chosen)}
    for column in CSV_COLUMNS[2:]:
      values = np.array([row[column] for row in chosen], dtype=np.float64)
      entry[column] = (float(np.mean(values)),
                       float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
    summary.append(entry)
  return summary


def format_csv(rows: Sequence[dict]) -> str:
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator='\n')
  writer.writeheader()
  for row in rows:
    writer.writerow({key: (f'{value:.6f}' if isinstance(value, float) else value)
                     for key, value in row.items()})
  return text.getvalue()


def format_markdown(summary: Sequence[dict]) -> str:
  headers = ['variant', 'seeds', 'accuracy', 'real', 'seen', 'unseen', 'log loss']
  lines = ['| ' + ' | '.join(headers) + ' |', '|' + '---|' * len(headers)]
  for entry in summary:
    cells = [f'{100 * entry[column][0]:.1f} ± {100 * entry[column][1]:.1f}'
             for column in CSV_COLUMNS[2:-1]]
    mean, std = entry['log_loss']
    lines.append('| ' + ' | '.join([entry['variant'], str(entry['seeds']), *cells,
                                    f'{mean:.3f} ± {std:.3f}']) + ' |')
  return ('Accuracy in %, mean ± standard deviation over seeds; real = devices a, b, c, '
          'seen = s1-s3, unseen = s4-s6.\n\n' + '\n'.join(lines) + '\n')


def plot_ablation(path: str, rows: Sequence[dict]) -> None:
  """Accuracy per device group per variant: bars at the mean, error bars at the std over seeds,
  and one dot per seed."""
  summary = summarize(rows)
  columns = ('accuracy', *(f'{group}_accuracy' for group in GROUPS))
  labels = ('overall', *GROUPS)
  figure = mpl_figure.Figure(figsize=(max(6.0, 1.6 * len(summary) + 2), 4.5))
  axes = figure.add_subplot()
  width = 0.8 / len(columns)
  for offset, (column, label) in enumerate(zip(columns, labels)):
    positions = np.arange(len(summary)) + (offset - (len(columns) - 1) / 2) * width
    means = [100 * entry[column][0] for entry in summary]
    stds = [100 * entry[column][1] for entry in summary]
    bars = axes.bar(positions, means, width, yerr=stds, capsize=3, label=label, alpha=0.8)
    for position, entry in zip(positions, summary):
      seeds = [100 * row[column] for row in rows if row['variant'] == entry['variant']]
      axes.plot([position] * len(seeds), seeds, 'o', markersize=3, color='black',
                markerfacecolor=bars.patches[0].get_facecolor())
  axes.set_xticks(np.arange(len(summary)))
  axes.set_xticklabels([entry['variant'] for entry in summary], rotation=20, ha='right',
                       fontsize=8)
  axes.set_ylabel('test accuracy (%)')
  axes.set_ylim(0, 100)
  axes.set_title('ablation: mean ± std over seeds per device group')
  axes.legend(fontsize=8)
  reports._save_figure(path, figure)  # pylint: disable=protected-access


def write_outputs(workdir: str, rows: Sequence[dict]) -> None:
  fileio.atomic_write_text(os.path.join(workdir, 'ablation.csv'), format_csv(rows))
  fileio.atomic_write_text(os.path.join(workdir, 'ablation.md'), format_markdown(summarize(rows)))
  plot_ablation(os.path.join(workdir, 'ablation.png'), rows)


def ablate(config: ml_collections.ConfigDict, workdir: str, sweeps: Sequence[str],
           num_seeds: int, vmap: bool = False) -> Optional[list[dict]]:
  """Runs (or resumes) the sweep grid and writes the outputs on process 0; returns the CSV rows,
  or None when a stop signal interrupted it."""
  runs = grid(config, sweeps, num_seeds)
  rows = run_sweep(config, workdir, runs, vmap)
  if rows is None:
    return None
  if distributed.is_primary():
    write_outputs(workdir, rows)
    print(format_markdown(summarize(rows)))
  return rows


def define_flags() -> None:
  """Command-line flags; defined only when run as a program, so importing this module
  next to other command modules defines no clashing flags."""
  configs.define_config_flag('config', None, 'Base experiment config (configs/NAME.py[:variant] '
                             'or a packaged config NAME).')
  flags.DEFINE_string('workdir', None, 'Directory of the sweep: a sub-directory per run.')
  flags.DEFINE_multi_string('sweep', [], "A config key and its values, 'key=v1,v2,...'; "
                             'several --sweep flags form a grid.')
  flags.DEFINE_integer('seeds', 1, 'Seeds per variant: config.seed, config.seed + 1, ...')
  flags.DEFINE_bool(
      'vmap', False, 'Train runs that differ only in seed, train.learning_rate or '
      'train.weight_decay together in one jax.vmap-ed program (checkpointed and '
      'resumable; see asc_jax/vmap_sweep.py).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if flags.FLAGS.config is None or flags.FLAGS.workdir is None:
    raise app.UsageError('--config and --workdir are required.')
  console.setup()
  distributed.initialize(flags.FLAGS.config.distributed)
  console.log_to_file(flags.FLAGS.workdir, jax.process_index())
  train.enable_compilation_cache(flags.FLAGS.config.train.compilation_cache_dir)
  ablate(flags.FLAGS.config, flags.FLAGS.workdir, flags.FLAGS.sweep, flags.FLAGS.seeds,
         flags.FLAGS.vmap)


if __name__ == '__main__':
  host_memory.reexec_with_huge_pages()
  define_flags()
  app.run(main)
