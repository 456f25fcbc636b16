"""Model selection reads validation only: during training nothing touches the test split, the
'best' checkpoint is the one with the highest validation accuracy, early stopping follows the
validation scores, and the test split is scored once at the end with the checkpoint it names."""

import json

import pytest

from asc_jax import builder
from asc_jax import checkpointing
from asc_jax import metric_writer
from asc_jax import train
from asc_jax.data import datasets

from conftest import tiny_config


class Tripwire:
  """A data source that fails the test when anything reads it."""

  def __len__(self):
    raise AssertionError('the test split was read during training')

  def __getitem__(self, index):
    raise AssertionError('the test split was read during training')

  __getitems__ = __getitem__


@pytest.fixture
def selection_config(tiny_data_dir):
  config = tiny_config(tiny_data_dir)
  config.train.num_epochs = 8
  config.train.eval_every_epochs = 1
  config.train.learning_rate = 0.2
  return config


def test_training_never_reads_test_and_best_is_the_best_validation_score(selection_config,
                                                                         tmp_path):
  config = selection_config
  dataset = datasets.prepare(config)
  assert dataset.num_examples['validation'] > 0
  guarded = datasets.PreparedDataset(**{**dataset.__dict__,
                                        'sources': {**dataset.sources, 'test': Tripwire()}})
  run = builder.build(config, guarded)
  workdir = str(tmp_path)
  result = train.fit(config, workdir, guarded, run)
  assert result.completed
  history = metric_writer.read_history(workdir)
  scores = {row['step']: row['validation/accuracy'] for row in history
            if 'validation/accuracy' in row}
  assert len(scores) == 8 and not any(key.startswith('test/') for row in history for key in row)
  best = checkpointing.checkpoint_manager(workdir).best_step()
  assert scores[best] == max(scores.values())

  metrics = train.finish(config, workdir, run, dataset, result.state)
  report = json.loads((tmp_path / 'eval_test.json').read_text())
  assert report['split'] == 'test' and report['checkpoint'] == 'best' and report['step'] == best
  assert report['accuracy'] == metrics['accuracy'] and metrics['count'] == len(dataset.sources['test'])


def test_final_checkpoint_when_asked(selection_config, tmp_path):
  config = selection_config
  config.train.num_epochs = 2
  config.train.test_checkpoint = 'final'
  train.train_and_evaluate(config, str(tmp_path))
  report = json.loads((tmp_path / 'eval_test.json').read_text())
  assert report['checkpoint'] == 'final' and report['step'] == checkpointing.checkpoint_manager(
      str(tmp_path)).latest_step()


def expected_stop(scores, patience):
  """The index of the score after which early stopping ends training, or None."""
  best, since = float('-inf'), 0
  for index, score in enumerate(scores):
    best, since = (score, 0) if score > best else (best, since + 1)
    if since >= patience:
      return index
  return None


def test_early_stopping_ends_after_patience_scores_without_a_new_best(selection_config, tmp_path):
  config = selection_config
  config.train.learning_rate = 0.0         # only BatchNorm statistics move: scores stall
  config.train.early_stopping_patience = 2
  dataset = datasets.prepare(config)
  run = builder.build(config, dataset)
  result = train.fit(config, str(tmp_path), dataset, run)
  scores = [row['validation/accuracy'] for row in metric_writer.read_history(str(tmp_path))
            if 'validation/accuracy' in row]
  stop = expected_stop(scores, 2)
  assert result.completed and stop == len(scores) - 1
  assert result.step == len(scores) * run.task.steps_per_epoch < run.total_steps
  assert checkpointing.checkpoint_manager(str(tmp_path)).latest_step() == result.step
