"""benchmarks/real_audio/train_torch_reference.py trains with asc_jax's recipe and scores like
asc_jax: its learning rate is asc_jax.optim's schedule step for step, its metrics are
asc_jax.evaluate's (torch itself is not needed for either)."""

import os

import numpy as np
import pytest

from asc_jax import evaluate
from asc_jax import optim
from asc_jax.configs import real_audio

from conftest import load_script

SCRIPT = os.path.join(os.path.dirname(__file__), '..', 'benchmarks', 'real_audio',
                      'train_torch_reference.py')


@pytest.fixture(scope='module')
def reference():
  return load_script(SCRIPT)


@pytest.mark.parametrize('variant', ['plain', 'plain_50', 'runlocal'])
def test_learning_rate_is_asc_jax_schedule(reference, variant):
  train = real_audio.get_config(variant).train
  steps_per_epoch = 1999 // train.batch_size
  total = int(train.num_epochs * steps_per_epoch)
  warmup = min(round(train.warmup_epochs * steps_per_epoch), total - 1)
  schedule = optim.learning_rate_schedule(train, steps_per_epoch)
  ours = np.array([reference.learning_rate(step, train.learning_rate, warmup, total)
                   for step in range(total + 1)])
  np.testing.assert_allclose(ours, [float(schedule(step)) for step in range(total + 1)],
                             atol=1e-7)
  assert ours[0] == 0.0 and ours.max() == pytest.approx(train.learning_rate)


def test_metrics_match_asc_jax_evaluate(reference):
  rng = np.random.default_rng(0)
  devices = ('a', 'b', 'c', 's1', 's2', 's3', 's4', 's5', 's6')
  logits = rng.standard_normal((90, 10)) * 3
  labels = rng.integers(0, 10, 90)
  device_index = np.repeat(np.arange(9), 10)
  ours = reference.metrics(logits, labels, np.array(devices)[device_index])
  theirs = evaluate.compute_metrics(logits, labels, device_index, [str(i) for i in range(10)],
                                    devices, device_groups=reference.GROUPS)
  assert ours['accuracy'] == pytest.approx(theirs['accuracy'])
  assert ours['log_loss'] == pytest.approx(theirs['log_loss'])
  for group in reference.GROUPS:
    assert ours['per_device_group'][group]['accuracy'] == pytest.approx(
        theirs['per_device_group'][group]['accuracy'])
