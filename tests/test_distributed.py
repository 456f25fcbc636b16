"""Multi-host for real: two processes on localhost (2 forced CPU devices each, JAX's gloo CPU
collectives) train the tiny config and match one process with 4 devices fed the same global
batches; plus how asc_jax.distributed reads config and environment."""

import os

import jax
import numpy as np
import pytest

from asc_jax import builder
from asc_jax import checkpointing
from asc_jax import defaults
from asc_jax import distributed
from asc_jax import inference
from asc_jax import metric_writer
from asc_jax.data import datasets
from asc_jax.data import input_pipeline

import multihost
from conftest import tiny_config

def reference_losses(config, num_processes: int) -> list[float]:
  """Per-step losses of one process on 4 devices whose global batches are the concatenated
  per-process batches of a `num_processes`-process run (what the multi-host mesh assembles)."""
  dataset = datasets.prepare(config)
  run = builder.build(config, dataset, jax.devices()[:4])
  shards = [input_pipeline.train_iterator(
      dataset.sources['train'], global_batch_size=config.train.batch_size, seed=config.seed,
      device_names=dataset.device_names, process_index=index, process_count=num_processes)
      for index in range(num_processes)]
  state = run.init(jax.random.key(config.seed))
  base_key = run.base_key(config.seed)
  losses = []
  for _ in range(run.total_steps):
    parts = [next(shard) for shard in shards]
    batch = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    state, metrics = run.train_step(state, run.global_batch(batch), base_key)
    losses.append(float(metrics['loss']))
  return losses


@pytest.fixture
def multihost_config(tiny_data_dir):
  config = tiny_config(tiny_data_dir)
  config.train.num_epochs = 2
  config.train.log_every_steps = 1
  config.train.checkpoint_every_steps = 100   # one save, at the end (with the final eval)
  config.model.dropout_rate = 0.0
  # A small rate keeps float32 sum-order differences (gloo across processes vs one process)
  # from growing over the steps on this tiny set.
  config.train.learning_rate = 0.01
  return config


def test_two_processes_match_one_process_with_four_devices(multihost_config, tmp_path):
  config = multihost_config
  workdir = tmp_path / 'run'
  results = multihost.finish(multihost.start(config, workdir, tmp_path), tmp_path)
  assert [r['process_index'] for r in results] == [0, 1]
  assert [r['is_primary'] for r in results] == [True, False]
  assert all(r['joined'] and r['process_count'] == 2 and r['device_count'] == 4
             and r['local_device_count'] == 2 for r in results)
  assert results[0]['accuracy'] == results[1]['accuracy']
  assert results[0]['log_loss'] == results[1]['log_loss']

  history = metric_writer.read_history(str(workdir))
  losses = [row['train/loss'] for row in history if 'train/loss' in row]
  reference = reference_losses(config, multihost.NUM_PROCESSES)
  assert len(losses) == len(reference) >= 4
  np.testing.assert_allclose(losses, reference, rtol=1e-4)

  # Process 0 alone wrote the run files; the checkpoint holds both processes' data iterators.
  assert (workdir / 'eval_test.json').exists() and (workdir / 'config.json').exists()
  assert [row['step'] for row in history if 'train/loss' in row] == list(range(1, 7))
  latest = checkpointing.checkpoint_manager(str(workdir)).latest_step()
  assert latest == len(reference)
  data_files = sorted(os.listdir(workdir / checkpointing.CHECKPOINT_DIR / str(latest) / 'data'))
  assert [name for name in data_files if name.startswith('process_')] == [
      'process_0-of-2.json', 'process_1-of-2.json']
  variables = inference.load_variables(str(workdir))
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(variables['params']))


def test_a_single_host_run_joins_nothing(monkeypatch):
  for name in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID'):
    monkeypatch.delenv(name, raising=False)
  section = defaults.distributed_section()
  assert distributed.initialize_arguments(section) is None
  section.num_processes = 1
  section.coordinator_address = 'host:1234'
  assert distributed.initialize_arguments(section) is None
  assert distributed.initialize(defaults.distributed_section()) is False
  assert distributed.is_primary()


def test_explicit_settings_and_environment(monkeypatch):
  for name in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID'):
    monkeypatch.delenv(name, raising=False)
  section = defaults.distributed_section()
  section.update(dict(coordinator_address='node0:29500', num_processes=4, process_id=3,
                      local_device_ids='0,1'))
  assert distributed.initialize_arguments(section) == dict(
      coordinator_address='node0:29500', num_processes=4, process_id=3, local_device_ids=[0, 1])
  monkeypatch.setenv('JAX_COORDINATOR_ADDRESS', 'node7:1')
  monkeypatch.setenv('JAX_NUM_PROCESSES', '2')
  monkeypatch.setenv('JAX_PROCESS_ID', '1')
  assert distributed.initialize_arguments(defaults.distributed_section()) == dict(
      coordinator_address='node7:1', num_processes=2, process_id=1, local_device_ids=None)


@pytest.mark.parametrize('settings, message', [
    (dict(num_processes=2, process_id=0), 'coordinator_address'),
    (dict(num_processes=2, coordinator_address='h:1'), 'process_id'),
    (dict(num_processes=2, coordinator_address='h:1', process_id=2), 'process_id'),
    (dict(num_processes=2, coordinator_address='h:1', process_id=0, local_device_ids='0;1'),
     'local_device_ids'),
])
def test_incomplete_settings_name_the_key(monkeypatch, settings, message):
  for name in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID'):
    monkeypatch.delenv(name, raising=False)
  section = defaults.distributed_section()
  section.update(settings)
  with pytest.raises(ValueError, match=f'config.distributed.{message}'):
    distributed.initialize_arguments(section)
