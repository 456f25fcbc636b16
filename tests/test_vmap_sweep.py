"""Seeds trained together with jax.vmap give each seed the losses and test metrics of its own
separate run (checked for the second seed, whose position in the stack is not the first)."""

import copy

import jax
import numpy as np

from asc_jax import metric_writer
from asc_jax import train
from asc_jax import vmap_sweep
from asc_jax.data import datasets

from conftest import tiny_config

SEEDS = (0, 3)


def separate_run(config, seed, workdir):
  """Per-step losses and final test metrics of an ordinary run with config.seed = seed."""
  config = copy.deepcopy(config)
  config.seed = seed
  trainer = train.Trainer(config, workdir, datasets.prepare(config))
  writer = metric_writer.MetricWriter(workdir)
  state, _ = trainer.fit(writer)
  writer.close()
  losses = [row['train/loss'] for row in metric_writer.read_history(workdir) if 'train/loss' in row]
  return np.array(losses), trainer.evaluate(state, step=int(state.step), write_files=False)


def test_vmapped_seeds_match_separate_runs(tiny_data_dir, tmp_path):
  config = tiny_config(tiny_data_dir)
  config.train.num_epochs = 1
  config.train.log_every_steps = 1
  config.train.eval_every_epochs = 100
  group = vmap_sweep.SeedGroup(config, datasets.prepare(config), SEEDS, devices=jax.devices()[:2])
  stacked, losses = group.fit()
  metrics = group.evaluate(stacked)
  assert losses.shape == (group.trainer.total_steps, len(SEEDS))
  assert not np.allclose(losses[:, 0], losses[:, 1])   # the seeds really differ
  expected_losses, expected = separate_run(config, SEEDS[1], str(tmp_path))
  np.testing.assert_allclose(losses[:, 1], expected_losses, rtol=1e-4)
  np.testing.assert_allclose(metrics[1]['log_loss'], expected['log_loss'], rtol=1e-4)
  assert metrics[1]['accuracy'] == expected['accuracy']
  assert metrics[0]['log_loss'] != metrics[1]['log_loss']
