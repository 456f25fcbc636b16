"""The training loop for real: sharded steps on 1 and 8 CPU devices, resume after SIGTERM,
determinism, exact evaluation and the files a run leaves in its workdir."""

import json
import os
import signal
import threading
import time

import jax
import numpy as np
import pytest

from asc_jax import builder
from asc_jax import checkpointing
from asc_jax import hooks
from asc_jax import inference
from asc_jax import metric_writer
from asc_jax import train
from asc_jax.data import datasets

from conftest import tiny_config


def run_steps(config, workdir, devices):
  """Trains with a mesh over `devices`; returns the logged losses and the final state."""
  dataset = datasets.prepare(config)
  result = train.fit(config, workdir, dataset, builder.build(config, dataset, devices))
  state = result.state
  losses = [row['train/loss'] for row in metric_writer.read_history(workdir) if 'train/loss' in row]
  return np.array(losses), state


@pytest.fixture
def short_config(tiny_data_dir):
  config = tiny_config(tiny_data_dir)
  config.train.num_epochs = 1
  config.train.log_every_steps = 1
  config.model.dropout_rate = 0.0
  return config


def test_one_and_eight_devices_give_the_same_losses(short_config, tmp_path):
  assert jax.device_count() == 8
  losses_1, _ = run_steps(short_config, str(tmp_path / 'one'), jax.devices()[:1])
  losses_8, _ = run_steps(short_config, str(tmp_path / 'eight'), jax.devices())
  assert len(losses_1) >= 2 and len(losses_1) == len(losses_8)
  np.testing.assert_allclose(losses_8, losses_1, rtol=1e-4)
  assert np.all(np.isfinite(losses_1))


def test_same_seed_gives_identical_metrics_and_training_learns(tiny_data_dir, tmp_path):
  config = tiny_config(tiny_data_dir)
  config.train.num_epochs = 4
  first = train.train_and_evaluate(config, str(tmp_path / 'a'))
  second = train.train_and_evaluate(config, str(tmp_path / 'b'))
  assert first['accuracy'] == second['accuracy'] and first['log_loss'] == second['log_loss']
  history = metric_writer.read_history(str(tmp_path / 'a'))
  losses = [row['train/loss'] for row in history if 'train/loss' in row]
  assert np.mean(losses[-3:]) < np.mean(losses[:3])
  workdir = tmp_path / 'a'
  for name in ('config.json', 'dataset_info.json', 'predictions_test.csv', 'confusion_test.png',
               'accuracy_per_device_test.png', 'training_curves.png'):
    assert (workdir / name).stat().st_size > 0, name
  assert sum(first['per_device'][d]['count'] for d in first['per_device']) == first['count']
  assert first['count'] == datasets.prepare(config).num_examples['test']


def _interrupt_after_first_checkpoint(workdir: str) -> threading.Thread:
  def watch():
    directory = checkpointing.checkpoint_dir(workdir)
    for _ in range(6000):
      if os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory)):
        os.kill(os.getpid(), signal.SIGTERM)
        return
      time.sleep(0.01)
  watcher = threading.Thread(target=watch, daemon=True)
  watcher.start()
  return watcher


def test_resume_after_sigterm_ends_with_the_same_parameters(short_config, tmp_path):
  config = short_config
  config.train.num_epochs = 12
  config.train.checkpoint_every_steps = 2
  config.train.eval_every_epochs = 100
  _, reference = run_steps(config, str(tmp_path / 'straight'), jax.devices())

  interrupted_dir = str(tmp_path / 'interrupted')
  watcher = _interrupt_after_first_checkpoint(interrupted_dir)
  _, stopped = run_steps(config, interrupted_dir, jax.devices())
  watcher.join()
  dataset = datasets.prepare(config)
  total = builder.build(config, dataset).total_steps
  assert int(stopped.step) < total, 'the run was not interrupted'
  _, resumed = run_steps(config, interrupted_dir, jax.devices())
  assert int(resumed.step) == total
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed.params),
               jax.device_get(reference.params))


def test_nonfinite_loss_stops_with_the_step_and_keeps_last_checkpoint(short_config, tmp_path):
  config = short_config
  config.train.learning_rate = 1e30
  config.train.warmup_epochs = 0
  config.train.checkpoint_every_steps = 1
  with pytest.raises(hooks.NonFiniteLossError, match=r'at step \d+'):
    run_steps(config, str(tmp_path), jax.devices())
  variables = inference.load_variables(str(tmp_path))
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(variables['params']))


def test_reevaluation_matches_the_final_evaluation(tiny_data_dir, tmp_path):
  config = tiny_config(tiny_data_dir)
  final = train.train_and_evaluate(config, str(tmp_path))
  again = train.evaluate_workdir(str(tmp_path))
  assert again['accuracy'] == final['accuracy']
  np.testing.assert_allclose(again['log_loss'], final['log_loss'], rtol=1e-6)
  saved = json.loads((tmp_path / 'config.json').read_text())
  assert saved['model']['name'] == 'bcresnet_mod'
