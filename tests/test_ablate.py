"""Ablation sweeps: the grid of runs, typed overrides, a real tiny sweep's table / CSV / plot,
skipping finished runs, and the mean +- std summary."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from asc_jax import ablate
from asc_jax import defaults
from asc_jax import metric_writer

from conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def base_config():
  return defaults.experiment(data=defaults.data_section('synthetic_scenes', 'tiny'),
                             features=defaults.reference_features(),
                             model=defaults.bcresnet_mod_model(1),
                             train=defaults.sgd_cosine_train(), seed=5)


def test_grid_is_every_combination_times_seeds_with_typed_values():
  config = base_config()
  runs = ablate.grid(config, ['model.norm_lambda=0,0.5', 'train.batch_size=16,32',
                              'model.norm=resnorm,none'], num_seeds=2)
  assert len(runs) == 2 * 2 * 2 * 2
  assert runs[0] == ablate.Run('model.norm_lambda=0.0__train.batch_size=16__model.norm=resnorm',
                               (('model.norm_lambda', 0.0), ('train.batch_size', 16),
                                ('model.norm', 'resnorm')), 5)
  assert [run.seed for run in runs[:2]] == [5, 6]
  assert runs[-1].directory == ('model.norm_lambda=0.5__train.batch_size=32__model.norm=none/'
                                'seed_6')
  variant = ablate.run_config(config, runs[-1])
  assert (variant.model.norm_lambda, variant.train.batch_size, variant.model.norm,
          variant.seed) == (0.5, 32, 'none', 6)
  assert isinstance(variant.train.batch_size, int)
  assert config.model.norm_lambda == 0.1 and config.seed == 5   # the base config is untouched
  assert [run.variant for run in ablate.grid(config, [], 1)] == ['base']


@pytest.mark.parametrize('sweep, message', [
    ('model.resnorm_lambda=0,1', "no 'resnorm_lambda'"),
    ('train.batch_size=16,0.5', 'not a valid int'),
    ('model.norm_lambda', 'key=value1,value2'),
    ('model.norm=a/b', 'no "/"'),
    ('seed=1,2', '--seeds'),
])
def test_bad_sweeps_name_the_problem(sweep, message):
  with pytest.raises((KeyError, ValueError), match=message):
    ablate.grid(base_config(), [sweep], 1)


def test_summary_is_mean_and_sample_std_over_seeds():
  rows = [{'variant': 'v', 'seed': seed, 'accuracy': accuracy, 'real_accuracy': 0.5,
           'seen_accuracy': 0.25, 'unseen_accuracy': float('nan'), 'log_loss': loss}
          for seed, accuracy, loss in ((0, 0.6, 1.0), (1, 0.8, 2.0))]
  (entry,) = ablate.summarize(rows)
  assert entry['seeds'] == 2
  np.testing.assert_allclose(entry['accuracy'], (0.7, np.std([0.6, 0.8], ddof=1)))
  np.testing.assert_allclose(entry['log_loss'], (1.5, np.std([1.0, 2.0], ddof=1)))
  table = ablate.format_markdown([entry])
  assert '| v | 2 | 70.0 ± 14.1 | 50.0 ± 0.0 | 25.0 ± 0.0 | nan ± nan | 1.500 ± 0.707 |' in table


def test_tiny_sweep_writes_table_csv_and_plot_and_skips_finished_runs(tiny_data_dir, tmp_path):
  config = tiny_config(tiny_data_dir)
  config.train.num_epochs = 1
  rows = ablate.ablate(config, str(tmp_path), ['model.norm_lambda=0,0.5'], num_seeds=1)
  variants = ['model.norm_lambda=0.0', 'model.norm_lambda=0.5']
  assert [(row['variant'], row['seed']) for row in rows] == [(v, 0) for v in variants]

  with open(tmp_path / 'ablation.csv', encoding='utf-8') as file:
    table = list(csv.DictReader(file))
  assert list(table[0]) == list(ablate.CSV_COLUMNS)
  for line, variant in zip(table, variants):
    report = json.loads((tmp_path / variant / 'seed_0' / 'eval_test.json').read_text())
    assert line['variant'] == variant and line['seed'] == '0'
    assert float(line['accuracy']) == pytest.approx(report['accuracy'], abs=1e-6)
    assert float(line['log_loss']) == pytest.approx(report['log_loss'], abs=1e-6)
    for group in ablate.GROUPS:
      assert float(line[f'{group}_accuracy']) == pytest.approx(
          report['per_device_group'][group]['accuracy'], abs=1e-6)

  markdown = (tmp_path / 'ablation.md').read_text()
  table_rows = [line for line in markdown.splitlines() if line.startswith('| model.')]
  assert [line.split(' | ')[0][2:] for line in table_rows] == variants
  accuracy = 100 * float(table[0]['accuracy'])
  assert f'| {variants[0]} | 1 | {accuracy:.1f} ± 0.0 |' in markdown
  assert (tmp_path / 'ablation.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

  # The command line, on the finished sweep: nothing retrains, the same outputs are written.
  history_sizes = [len(metric_writer.read_history(str(tmp_path / v / 'seed_0'))) for v in variants]
  csv_text = (tmp_path / 'ablation.csv').read_text()
  (tmp_path / 'ablation.csv').unlink()
  subprocess.run([sys.executable, '-m', 'asc_jax.ablate', '--config=configs/quickstart.py:tiny',
                  f'--config.data.data_dir={tiny_data_dir}', '--config.data.num_workers=1',
                  '--config.train.compilation_cache_dir=', '--config.train.num_epochs=1',
                  '--sweep=model.norm_lambda=0,0.5', '--seeds=1', f'--workdir={tmp_path}'],
                 cwd=ROOT, check=True, capture_output=True)
  assert (tmp_path / 'ablation.csv').read_text() == csv_text
  assert [len(metric_writer.read_history(str(tmp_path / v / 'seed_0')))
          for v in variants] == history_sizes
