#!/usr/bin/env python3
"""Tables of the real-audio benchmark: one row per run, then mean +- standard deviation per variant.

Reads
  - benchmarks/results/real_audio_torch_<variant>_seed<seed>.json, written by
    train_torch_reference.py (the PyTorch reference network);
  - asc_jax workdirs given as --asc LABEL=GLOB (their eval_test.json and config.json): each is
    recorded once as benchmarks/results/real_audio_asc_<label>_seed<seed>.json, so the tables can
    be rebuilt without the workdirs;
  - compressed workdirs given as --compressed LABEL=GLOB (their compress_report.json), recorded as
    real_audio_compressed_<label>_seed<seed>.json;
  - out-of-fold teacher-logit directories given as --cross_validation LABEL=DIR (written by
    python -m asc_jax.compress.teacher from K cross-fit runs of one recipe,
    config.data.cross_fit=k/K), recorded as real_audio_cross_validation_<label>.json: the
    recipe's K-fold cross-validation score over the whole train split;
and writes real_audio_runs.csv (every run), real_audio_summary.csv / .json / .md (per variant)
and, when cross-validation scores are recorded, real_audio_cross_validation.md.
Accuracy is reported overall and per device group of the benchmark: a (the clips themselves),
seen (b, c, s1, s2, s3) and unseen (s4, s5, s6), all on the test split; `checkpoint` says which
weights were scored (final, or the best by validation accuracy). An asc_jax run's record also
holds its validation scores (the best validation accuracy and the lowest validation log loss of
its metrics.jsonl): the figures recipes are chosen by. Nothing here selects on test.

  python benchmarks/real_audio/summarize.py --asc plain='runs/real_audio_plain_s*' \
      --asc recipe='runs/real_audio_recipe_s*' --compressed int8='runs/*_compressed_s*'
"""

import argparse
import csv
import glob
import json
import os
import statistics
import sys
import tempfile
from typing import Optional

from asc_jax import metric_writer
from train_torch_reference import GROUPS   # the benchmark's device groups (a, seen, unseen)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
DEFAULT_RESULTS = os.path.join(REPO, 'benchmarks', 'results')
COLUMNS = ('overall', 'a', 'seen', 'unseen')
VALIDATION = ('validation_accuracy', 'validation_log_loss')


def group_accuracies(per_device: dict) -> dict:
  """Accuracy of each group from per-device {accuracy, count} (weighted by count) or plain
  accuracies (compress_report.json; weighted equally, as the test split has equal counts)."""
  result = {}
  for group, members in GROUPS.items():
    present = [per_device[name] for name in members if name in per_device]
    present = [entry if isinstance(entry, dict) else {'accuracy': entry, 'count': 1}
               for entry in present]
    if present:
      correct = sum(entry['accuracy'] * entry['count'] for entry in present)
      result[group] = correct / sum(entry['count'] for entry in present)
  return result


def record(metrics: dict) -> dict:
  """The fields every table row needs from a metrics dict (asc_jax.evaluate or the torch one)."""
  return dict(overall=metrics['accuracy'], log_loss=metrics['log_loss'],
              **group_accuracies(metrics['per_device']))


def validation_scores(workdir: str) -> dict:
  """{'validation_accuracy': best, 'validation_log_loss': lowest} over the run's validation
  scores; {} when it logged none."""
  history = metric_writer.read_history(workdir)
  accuracies = [row['validation/accuracy'] for row in history if 'validation/accuracy' in row]
  losses = [row['validation/log_loss'] for row in history if 'validation/log_loss' in row]
  if not accuracies:
    return {}
  return dict(validation_accuracy=max(accuracies), validation_log_loss=min(losses),
              validation_scores=len(accuracies))


def atomic_json(path: str, payload: dict) -> None:
  handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.tmp')
  with os.fdopen(handle, 'w') as output:
    json.dump(payload, output, indent=1)
  os.replace(temporary, path)


def read_json(path: str) -> dict:
  with open(path) as file:
    return json.load(file)


def expand(spec: str, flag: str) -> tuple[str, list[str]]:
  label, equals, pattern = spec.partition('=')
  if not equals or not label or not label.replace('_', '').isalnum():
    raise SystemExit(f'{flag} {spec!r}: expected LABEL=GLOB with a label of letters, digits, _.')
  # Only directories: a pattern like runs/plain_s* also matches the runs' log files (plain_s0.out).
  paths = sorted(path for path in glob.glob(os.path.expanduser(pattern)) if os.path.isdir(path))
  if not paths:
    raise SystemExit(f'{flag} {spec!r}: no directory matches {pattern!r}.')
  return label, paths


def record_asc_runs(spec: str, results: str) -> None:
  label, workdirs = expand(spec, '--asc')
  for workdir in workdirs:
    if not os.path.exists(os.path.join(workdir, 'eval_test.json')):
      raise SystemExit(f'{workdir}: no eval_test.json; the run has not finished.')
  configs = {workdir: read_json(os.path.join(workdir, 'config.json')) for workdir in workdirs}
  distinct_seeds('--asc', label, {workdir: config['seed'] for workdir, config in configs.items()})
  for workdir, config in configs.items():
    test = read_json(os.path.join(workdir, 'eval_test.json'))
    atomic_json(os.path.join(results, f'real_audio_asc_{label}_seed{config["seed"]}.json'), dict(
        framework='asc_jax', variant=label, seed=config['seed'], workdir=os.path.abspath(workdir),
        checkpoint=checkpoint_label(test['checkpoint']), step=test['step'], split=test['split'],
        test=record(test), per_device=test['per_device'], **validation_scores(workdir),
        config={key: config[key] for key in ('model', 'train', 'augment', 'features')}))


def record_compressed_runs(spec: str, results: str) -> None:
  label, workdirs = expand(spec, '--compressed')
  reports = {workdir: read_json(os.path.join(workdir, 'compress_report.json'))
             for workdir in workdirs}
  seeds = {workdir: source_seed(workdir, report) for workdir, report in reports.items()}
  distinct_seeds('--compressed', label, seeds)
  for workdir, report in reports.items():
    seed = seeds[workdir]
    entry = dict(framework='asc_jax', variant=label, seed=seed, workdir=os.path.abspath(workdir),
                 source_workdir=report['source_workdir'], config=report['config'])
    for part in ('source', 'student', 'export'):
      if part in report:
        entry[part] = dict(test=record(report[part]['metrics']), size=report[part].get('size'))
    atomic_json(os.path.join(results, f'real_audio_compressed_{label}_seed{seed}.json'), entry)


def source_seed(workdir: str, report: dict) -> int:
  """The seed of the run a compressed model was made from: the report's `source_seed`, or, in
  reports written before it was recorded, the source run's config.json (every compress run
  trains with the compress config's own seed, so its own config.json cannot tell two apart)."""
  if 'source_seed' in report:
    return int(report['source_seed'])
  source_config = os.path.join(report['source_workdir'], 'config.json')
  if not os.path.exists(source_config):
    raise SystemExit(f'{workdir}: its report predates source_seed and its source run '
                     f'{report["source_workdir"]} has no config.json; a compressed model is '
                     'recorded under its source run\'s seed, so record it where that run is.')
  return read_json(source_config)['seed']


def distinct_seeds(flag: str, label: str, seeds: dict) -> None:
  """Records are keyed by label and seed: two runs of one seed would overwrite each other."""
  by_seed = {}
  for workdir, seed in seeds.items():
    if seed in by_seed:
      raise SystemExit(f'{flag} {label}: {by_seed[seed]} and {workdir} are both seed {seed}; '
                       'give runs of one seed separate labels.')
    by_seed[seed] = workdir


def record_cross_validation(spec: str, results: str) -> None:
  label, equals, directory = spec.partition('=')
  metadata_path = os.path.join(directory, 'teacher_logits.json')
  if not equals or not os.path.exists(metadata_path):
    raise SystemExit(f'--cross_validation {spec!r}: expected LABEL=DIR with DIR/teacher_logits.json '
                     '(python -m asc_jax.compress.teacher over the K cross-fit runs).')
  metadata = read_json(metadata_path)
  if 'out_of_fold' not in metadata:
    raise SystemExit(f'{metadata_path}: no out-of-fold scores; its teachers are not cross-fit runs '
                     '(config.data.cross_fit=k/K).')
  atomic_json(os.path.join(results, f'real_audio_cross_validation_{label}.json'), dict(
      variant=label, folds=metadata['cross_fit'], teachers=metadata['teachers'],
      checkpoint=checkpoint_label(metadata.get('checkpoint')),
      checkpoint_steps=metadata.get('checkpoint_steps'), **metadata['out_of_fold']))


def checkpoint_label(which: Optional[str]) -> str:
  """'best' or 'final' for a recorded checkpoint name: 'latest' (a finished run re-scored with
  `--mode=evaluate --checkpoint=latest`, or teacher logits of the default `--which`) and None
  (teacher logits written before the checkpoint was recorded) are the final weights."""
  return 'best' if which == 'best' else 'final'


def write_cross_validation_table(results: str) -> None:
  paths = sorted(glob.glob(os.path.join(results, 'real_audio_cross_validation_*.json')))
  if not paths:
    return
  groups = sorted({group for path in paths for group in read_json(path)['per_device_group']})
  lines = ['| variant | checkpoint | folds | clips | accuracy % | log loss | '
           + ' | '.join(f'{group} %' for group in groups) + ' |',
           '|' + '---|' * (6 + len(groups))]
  for path in paths:
    run = read_json(path)
    lines.append(f'| {run["variant"]} | {run.get("checkpoint", "final")} | {len(run["folds"])} | '
                 f'{run["count"]} | '
                 f'{100 * run["accuracy"]:.2f} | {run["log_loss"]:.3f} | ' + ' | '.join(
                     f'{100 * run["per_device_group"][group]["accuracy"]:.2f}'
                     if group in run['per_device_group'] else '' for group in groups) + ' |')
  with open(os.path.join(results, 'real_audio_cross_validation.md'), 'w') as file:
    file.write('K-fold cross-validation over the train split (out-of-fold logits of K cross-fit '
               'runs at their final weights or best-validation checkpoints; the test split is '
               'not read).\n\n' + '\n'.join(lines) + '\n')
  print('\n'.join(lines))


def torch_rows(results: str) -> list[dict]:
  rows = []
  for path in sorted(glob.glob(os.path.join(results, 'real_audio_torch_*_seed*.json'))):
    run = read_json(path)
    variant = run['config'].partition(':')[2] or 'plain'
    for key, checkpoint in (('test_final', 'final'), ('test_best_validation', 'best')):
      if key in run:
        rows.append(dict(framework='torch reference', variant=variant, seed=run['seed'],
                         checkpoint=checkpoint, **record(run[key])))
  return rows


def asc_rows(results: str) -> list[dict]:
  rows = []
  for path in sorted(glob.glob(os.path.join(results, 'real_audio_asc_*_seed*.json'))):
    run = read_json(path)
    rows.append(dict(framework='asc_jax', variant=run['variant'], seed=run['seed'],
                     checkpoint=run['checkpoint'], **run['test'],
                     **{key: run[key] for key in VALIDATION if key in run}))
  for path in sorted(glob.glob(os.path.join(results, 'real_audio_compressed_*_seed*.json'))):
    run = read_json(path)
    for part, checkpoint in (('source', 'source'), ('student', 'final (fake-quantized)'),
                             ('export', 'final (int8 export)')):
      if part in run:
        rows.append(dict(framework='asc_jax', variant=f'{run["variant"]}', seed=run['seed'],
                         checkpoint=checkpoint, **run[part]['test']))
  return rows


def summarize(rows: list[dict]) -> list[dict]:
  groups = {}
  for row in rows:
    groups.setdefault((row['framework'], row['variant'], row['checkpoint']), []).append(row)
  summary = []
  for (framework, variant, checkpoint), members in groups.items():
    entry = dict(framework=framework, variant=variant, checkpoint=checkpoint, seeds=len(members))
    for column in (*COLUMNS, 'log_loss', *VALIDATION):
      values = [member[column] for member in members if column in member]
      if column in VALIDATION and len(values) < len(members):
        continue   # validation scores of every seed, or none
      entry[column] = dict(mean=statistics.fmean(values),
                           std=statistics.stdev(values) if len(values) > 1 else 0.0)
    summary.append(entry)
  return summary


def write_tables(rows: list[dict], summary: list[dict], results: str) -> None:
  run_columns = ('framework', 'variant', 'seed', 'checkpoint', *COLUMNS, 'log_loss', *VALIDATION)
  with open(os.path.join(results, 'real_audio_runs.csv'), 'w', newline='') as file:
    writer = csv.writer(file, lineterminator='\n')
    writer.writerow(run_columns)
    for row in rows:
      writer.writerow([cell(row, c) for c in run_columns])
  header = ['framework', 'variant', 'checkpoint', 'seeds', *(f'{c} %' for c in COLUMNS),
            'log loss', 'validation acc % / log loss']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  with open(os.path.join(results, 'real_audio_summary.csv'), 'w', newline='') as file:
    writer = csv.writer(file, lineterminator='\n')
    writer.writerow(header)
    for entry in summary:
      cells = [entry['framework'], entry['variant'], entry['checkpoint'], entry['seeds'],
               *(f'{100 * entry[c]["mean"]:.2f} +- {100 * entry[c]["std"]:.2f}' for c in COLUMNS),
               f'{entry["log_loss"]["mean"]:.3f} +- {entry["log_loss"]["std"]:.3f}',
               validation_cell(entry)]
      writer.writerow(cells)
      lines.append('| ' + ' | '.join(str(cell).replace('+-', '±') for cell in cells) + ' |')
  atomic_json(os.path.join(results, 'real_audio_summary.json'), {'variants': summary})
  with open(os.path.join(results, 'real_audio_summary.md'), 'w') as file:
    file.write('Test split of the real-audio benchmark, mean ± standard deviation over seeds; '
               'validation: mean over seeds of the best validation accuracy / the lowest '
               'validation log loss (asc_jax runs recorded with their metrics).\n\n')
    file.write('\n'.join(lines) + '\n')
  print('\n'.join(lines))


def cell(row: dict, column: str) -> str:
  """A runs-table cell: accuracies in %, log losses to 3 places, '' where the run has none."""
  if column not in row:
    return ''
  if column in COLUMNS or column == 'validation_accuracy':
    return f'{100 * row[column]:.2f}'
  return f'{row[column]:.3f}' if column.endswith('log_loss') else str(row[column])


def validation_cell(entry: dict) -> str:
  """'best accuracy / lowest log loss' (means over seeds), '' without validation records."""
  if 'validation_accuracy' not in entry:
    return ''
  return (f'{100 * entry["validation_accuracy"]["mean"]:.1f} / '
          f'{entry["validation_log_loss"]["mean"]:.2f}')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--asc', action='append', default=[], metavar='LABEL=GLOB',
                      help='asc_jax workdirs of one variant (recorded into benchmarks/results).')
  parser.add_argument('--compressed', action='append', default=[], metavar='LABEL=GLOB',
                      help='compressed asc_jax workdirs of one variant.')
  parser.add_argument('--cross_validation', action='append', default=[], metavar='LABEL=DIR',
                      help='out-of-fold teacher logits of K cross-fit runs of one recipe.')
  parser.add_argument('--results_dir', default=DEFAULT_RESULTS,
                      help='where the per-run JSONs and the tables are (default benchmarks/results;'
                      ' made when missing).')
  args = parser.parse_args(argv)
  os.makedirs(args.results_dir, exist_ok=True)
  for spec in args.asc:
    record_asc_runs(spec, args.results_dir)
  for spec in args.compressed:
    record_compressed_runs(spec, args.results_dir)
  for spec in args.cross_validation:
    record_cross_validation(spec, args.results_dir)
  write_cross_validation_table(args.results_dir)
  rows = torch_rows(args.results_dir) + asc_rows(args.results_dir)
  if not rows:
    raise SystemExit(f'no real-audio runs recorded in {args.results_dir}.')
  write_tables(rows, summarize(rows), args.results_dir)
  return 0


if __name__ == '__main__':
  sys.exit(main())
