"""Runs trained together with jax.vmap (different seeds and learning rates) give each run the
losses and test metrics of its own separate run (checked for the second member, whose position in
the stack is not the first); ablate groups runs by what changes the compiled program."""

import copy

import jax
import numpy as np
import pytest

from asc_jax import ablate
from asc_jax import builder
from asc_jax import metric_writer
from asc_jax import train
from asc_jax import vmap_sweep
from asc_jax.data import datasets

from conftest import tiny_config

SEEDS = (0, 3)
LEARNING_RATES = (0.05, 0.2)


def separate_run(config, seed, learning_rate, workdir):
  """Per-step losses and final test metrics of an ordinary run with this seed and learning rate,
  on the group's two devices (float32 sums over 8 devices round differently, and at learning
  rate 0.2 one such difference grows to 2e-3 by the third step on this tiny set)."""
  config = copy.deepcopy(config)
  config.seed = seed
  config.train.learning_rate = learning_rate
  dataset = datasets.prepare(config)
  run = builder.build(config, dataset, jax.devices()[:2])
  state = train.fit(config, workdir, dataset, run).state
  losses = [row['train/loss'] for row in metric_writer.read_history(workdir) if 'train/loss' in row]
  return np.array(losses), train.score(run, state, dataset, train.TEST,
                                       config.train.eval_batch_size)[0]


def test_vmapped_runs_match_separate_runs(tiny_data_dir, tmp_path):
  config = tiny_config(tiny_data_dir)
  config.train.num_epochs = 1
  config.train.warmup_epochs = 0
  config.train.log_every_steps = 1
  config.train.eval_every_epochs = 100
  members = [vmap_sweep.Member(seed, (('train.learning_rate', rate),))
             for seed, rate in zip(SEEDS, LEARNING_RATES)]
  group = vmap_sweep.RunGroup(config, datasets.prepare(config), members, devices=jax.devices()[:2])
  result, losses = group.fit(str(tmp_path / 'group'))
  stacked = result.state
  metrics = group.evaluate(stacked)
  assert result.completed and losses.shape == (group.run.total_steps, len(SEEDS))
  assert not np.allclose(losses[:, 0], losses[:, 1])   # the runs really differ
  np.testing.assert_allclose(stacked.opt_state.hyperparams['learning_rate'], LEARNING_RATES)
  expected_losses, expected = separate_run(config, SEEDS[1], LEARNING_RATES[1],
                                           str(tmp_path / 'separate'))
  np.testing.assert_allclose(losses[:, 1], expected_losses, rtol=1e-4)
  # Evaluation after training compounds the float32 rounding differences of a batched program.
  np.testing.assert_allclose(metrics[1]['log_loss'], expected['log_loss'], rtol=1e-3)
  # float32 rounding of a batched program may flip one near-tied test example of this tiny model.
  assert abs(metrics[1]['accuracy'] - expected['accuracy']) <= 1.01 / metrics[1]['count']
  assert metrics[0]['log_loss'] != metrics[1]['log_loss']


def test_ablate_groups_runs_that_share_a_compiled_program():
  config = tiny_config('unused')
  runs = ablate.grid(config, ['model.norm_lambda=0,0.5', 'train.learning_rate=0.05,0.1',
                              'train.weight_decay=0,0.001'], num_seeds=2)
  groups = {}
  for run in runs:
    groups.setdefault(ablate.program_key(run), []).append(run)
  assert list(groups) == [(('model.norm_lambda', 0.0),), (('model.norm_lambda', 0.5),)]
  assert [len(group) for group in groups.values()] == [8, 8]   # 2 rates x 2 decays x 2 seeds


@pytest.mark.parametrize('key', ['distill.alpha', 'augment.translation_p'])
def test_a_run_group_refuses_what_it_would_leave_out(key):
  config = tiny_config('unused')
  section, name = key.split('.')
  config[section][name] = 0.5
  with pytest.raises(ValueError, match=key.replace('.', r'\.')):
    vmap_sweep.RunGroup(config, None, [vmap_sweep.Member(0, ())])
