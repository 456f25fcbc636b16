"""Pod-safe preemption for real: two processes on localhost train one run, SIGTERM reaches only
one of them, both save the same step and exit cleanly, and running the command again resumes to
exactly the parameters of an uninterrupted two-process run. Plus the single-process signal rules."""

import os
import signal
import time

import jax
import numpy as np
import pytest

from asc_jax import builder
from asc_jax import checkpointing
from asc_jax import inference
from asc_jax import preemption
from asc_jax.data import datasets

import multihost
from conftest import tiny_config


@pytest.fixture
def long_config(tiny_data_dir):
  config = tiny_config(tiny_data_dir)
  config.train.num_epochs = 16
  config.train.log_every_steps = 5
  config.train.checkpoint_every_steps = 6
  config.train.stop_sync_every_steps = 2
  config.train.eval_every_epochs = 1000      # validation only at the end
  config.model.dropout_rate = 0.0
  return config


def saved_steps(workdir) -> list[int]:
  directory = checkpointing.checkpoint_dir(str(workdir))
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def test_sigterm_to_one_process_stops_both_at_one_step_and_resume_is_exact(long_config,
                                                                           tmp_path):
  config = long_config
  interrupted = tmp_path / 'interrupted'
  workers = multihost.start(config, interrupted, tmp_path, tag='first')
  deadline = time.monotonic() + 400
  while not saved_steps(interrupted) and time.monotonic() < deadline:
    assert all(worker.poll() is None for worker in workers), 'a worker ended before any save'
    time.sleep(0.05)
  workers[1].send_signal(signal.SIGTERM)          # process 1 only
  first = multihost.finish(workers, tmp_path, tag='first')
  assert [result['stopped'] for result in first] == [True, True]
  stopped_at = checkpointing.checkpoint_manager(str(interrupted)).latest_step()
  assert stopped_at % config.train.stop_sync_every_steps == 0
  _, total = builder.training_length(config.train,
                                     datasets.prepare(config).num_examples['train'])
  assert 0 < stopped_at < total
  assert not (interrupted / 'eval_test.json').exists()

  resumed = multihost.finish(multihost.start(config, interrupted, tmp_path, tag='again'),
                             tmp_path, tag='again')
  straight = tmp_path / 'straight'
  reference = multihost.finish(multihost.start(config, straight, tmp_path, tag='straight'),
                               tmp_path, tag='straight')
  assert [result['stopped'] for result in resumed + reference] == [False] * 4
  assert resumed[0]['accuracy'] == reference[0]['accuracy']
  assert resumed[0]['log_loss'] == reference[0]['log_loss']
  final = checkpointing.checkpoint_manager(str(straight)).latest_step()
  assert final == total == checkpointing.checkpoint_manager(str(interrupted)).latest_step()
  jax.tree.map(np.testing.assert_array_equal,
               inference.load_variables(str(interrupted))['params'],
               inference.load_variables(str(straight))['params'])


def test_a_single_process_stops_at_once_and_a_second_ctrl_c_aborts():
  before = signal.getsignal(signal.SIGINT)
  with preemption.stop_on_signals() as request:
    assert not preemption.agreed_stop(request, 1, every_steps=10)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.01)
    assert request.signal_name == 'SIGINT'
    assert preemption.agreed_stop(request, 7, every_steps=10)   # one process: no waiting
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(0.01)
  assert signal.getsignal(signal.SIGINT) is before
