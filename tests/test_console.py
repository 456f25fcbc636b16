"""The first run as a user sees it: a short console, the final table, the full log in a file;
configs found from any directory; fractional warm-up."""

import json
import os
import re
import subprocess
import sys

import pytest

from asc_jax import cli
from asc_jax import configs
from asc_jax import optim
from asc_jax.configs import quickstart

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
LINE_BUDGET = 60   # the tiny quickstart prints about 40: notes, 3 bars, the per-device table.


def test_tiny_quickstart_console_stays_short_and_ends_with_the_table(tmp_path):
  workdir, data_dir = tmp_path / 'run', tmp_path / 'tfds'
  command = [sys.executable, '-m', 'asc_jax.main', '--config=configs/quickstart.py:tiny',
             f'--workdir={workdir}', f'--config.data.data_dir={data_dir}',
             '--config.train.compilation_cache_dir=']
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, 'PYTHONPATH': REPO})
  console = result.stdout + result.stderr
  assert result.returncode == 0, console[-3000:]
  lines = console.count('\n')
  assert lines <= LINE_BUDGET, f'{lines} console lines:\n{console}'
  assert 'macro class-wise accuracy' in result.stdout and 'device s6' in result.stdout
  assert not re.search(r'^I\d{4} ', console, re.MULTILINE), 'absl INFO lines on the console'
  for third_party in ('Generating splits', 'Shuffling', 'CheckpointManager',
                      'Downloading and preparing', 'Using custom data configuration'):
    assert third_party not in console
  assert 'build synthetic_scenes' in console and 'feature-extraction worker' in console
  log = (workdir / 'log.txt').read_text()
  assert re.search(r'^I\d{4} .*checkpoint', log, re.MULTILINE | re.IGNORECASE)


def test_config_paths_fall_back_to_the_packaged_copies(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  packaged = os.path.join(os.path.dirname(configs.__file__), 'quickstart.py')
  for spec in ('configs/quickstart.py:tiny', 'asc_jax/configs/quickstart.py:tiny',
               'quickstart:tiny'):
    assert configs.resolve(spec) == packaged + ':tiny'
  own = tmp_path / 'configs' / 'quickstart.py'
  own.parent.mkdir()
  own.write_text('def get_config(arg=None):\n  return None\n')
  assert configs.resolve('configs/quickstart.py') == 'configs/quickstart.py'   # a file wins.
  assert configs.resolve('mine.py:x') == 'mine.py:x'
  with pytest.raises(ValueError, match='packaged configs are'):
    configs.packaged_path('nope')


def test_packaged_commands_run_from_any_directory(tmp_path):
  result = subprocess.run([sys.executable, '-c', 'from asc_jax import cli; cli.dispatch()',
                           'complexity', '--config=quickstart:tiny', '--json'],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert json.loads(result.stdout)['params'] == 8035
  assert set(cli.COMMANDS) >= {'train', 'predict', 'prepare', 'complexity', 'compress'}


def test_warmup_epochs_may_be_a_fraction():
  config = quickstart.get_config('resnorm')
  config.train.update(dict(num_epochs=25, warmup_epochs=1.25))   # 5 % of 25 epochs.
  schedule = optim.learning_rate_schedule(config.train, steps_per_epoch=8)
  rates = [float(schedule(step)) for step in range(14)]
  peak = config.train.learning_rate
  assert rates[0] == 0.0
  assert rates[10] == pytest.approx(peak)             # round(1.25 * 8) = 10 warm-up steps.
  assert rates[9] < rates[10] and rates[11] < rates[10]
