"""benchmarks/end_to_end.py's summary over rounds: per batch size, the median and range of the
rounds' asc_jax / faster-PyTorch ratios (the runs themselves need torch; see the benchmark)."""

import os

import pytest

from conftest import load_script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(REPO, 'benchmarks')


def load_end_to_end():
  return load_script(os.path.join(BENCHMARKS, 'end_to_end.py'))


def rows_of_round(round_index, batch, ratio):
  return [{'round': round_index, 'framework': framework, 'batch': batch,
           'speedup_vs_torch': ratio} for framework in ('asc_jax', 'torch 2', 'torch 2')]


def test_ratio_summary_takes_each_batch_size_over_its_rounds():
  rows = (rows_of_round(0, 32, 1.1) + rows_of_round(0, 100, 0.9) + rows_of_round(1, 32, 1.5)
          + rows_of_round(1, 100, 1.3) + rows_of_round(2, 32, 1.2) + rows_of_round(2, 100, 2.0))
  summary = load_end_to_end().ratio_summary(rows)
  assert summary == [dict(batch=32, rounds=3, median=1.2, min=1.1, max=1.5),
                     dict(batch=100, rounds=3, median=1.3, min=0.9, max=2.0)]


def test_rounds_must_be_positive(capsys):
  module = load_end_to_end()
  with pytest.raises(SystemExit) as stop:
    module.main(['--manual_dir=x', '--torch_python=x', '--reference=x', '--rounds=0'])
  assert stop.value.code == 2
  assert '--rounds=0: give 1 or more.' in capsys.readouterr().err
