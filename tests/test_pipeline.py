"""Tests of asc_jax.data.input_pipeline on in-memory sources and the real synthetic_scenes/tiny build."""

import itertools

from conftest import tiny_config
import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from asc_jax.data import datasets
from asc_jax.data import input_pipeline
from asc_jax.data import memory

DEVICES = ('a', 'b', 'c')


def make_source(size: int, n_mels: int = 4, frames: int = 3) -> list[dict]:
  """Records whose log-mel is filled with their own index, so a batch shows which were read."""
  return [{'logmel': np.full((n_mels, frames), i, np.float32), 'label': i % 10,
           'device': DEVICES[i % 3], 'city': 'lyon', 'identifier': f'lyon-{i}',
           'segment_id': f'bus-lyon-{i}-0',
           'filename': f'audio/bus-lyon-{i}-0-{DEVICES[i % 3]}.wav'}
          for i in range(size)]


def take(iterator, count: int) -> list[dict]:
  return list(itertools.islice(iterator, count))


def train(source, **kwargs):
  options = dict(global_batch_size=4, seed=0, device_names=DEVICES)
  options.update(kwargs)
  return input_pipeline.train_iterator(source, **options)


def test_train_batch_shapes_dtypes_and_values():
  source = make_source(10)
  batch = next(train(source))
  assert batch['logmel'].shape == (4, 4, 3) and batch['logmel'].dtype == np.float32
  for name in ('label', 'device', 'index'):
    assert batch[name].shape == (4,) and batch[name].dtype == np.int32
  assert 'mask' not in batch
  np.testing.assert_array_equal(batch['logmel'][:, 0, 0], batch['index'])
  np.testing.assert_array_equal(batch['label'], batch['index'] % 10)
  np.testing.assert_array_equal(batch['device'], batch['index'] % 3)


def test_train_is_deterministic_for_a_seed_and_differs_between_seeds():
  source = make_source(20)
  first = [b['index'] for b in take(train(source, seed=3), 10)]
  again = [b['index'] for b in take(train(source, seed=3), 10)]
  other = [b['index'] for b in take(train(source, seed=4), 10)]
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)


def test_train_epochs_cover_the_shard_drop_the_remainder_and_reshuffle():
  source = make_source(10)   # 2 batches of 4 per epoch; 2 records skipped each epoch.
  batches = [b['index'] for b in take(train(source), 6)]
  epochs = [np.concatenate(batches[i:i + 2]) for i in range(0, 6, 2)]
  for epoch in epochs:
    assert len(set(epoch.tolist())) == 8 and set(epoch.tolist()) <= set(range(10))
  assert not all(np.array_equal(epochs[0], epoch) for epoch in epochs[1:])


def test_train_process_shards_are_disjoint_and_cover_the_source():
  source = make_source(24)
  seen = []
  for process in range(3):
    # 8 records per process, batch 6 // 3 = 2: one epoch is 4 batches.
    batches = take(train(source, global_batch_size=6, process_index=process, process_count=3), 4)
    assert all(b['logmel'].shape[0] == 2 for b in batches)
    seen.append(set(np.concatenate([b['index'] for b in batches]).tolist()))
  assert all(len(indices) == 8 for indices in seen)
  assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
  assert set.union(*seen) == set(range(24))


def test_train_resumes_from_saved_state():
  source = make_source(14)
  iterator = train(source, seed=7)
  take(iterator, 5)
  saved = input_pipeline.state_to_bytes(iterator)
  expected = take(iterator, 6)
  resumed = train(source, seed=7)
  input_pipeline.restore_state(resumed, saved)
  for want, got in zip(expected, take(resumed, 6)):
    for name in want:
      np.testing.assert_array_equal(want[name], got[name])


def test_train_resumes_from_an_orbax_checkpoint(tmp_path):
  source = make_source(14)
  iterator = train(source, seed=1)
  take(iterator, 3)
  with ocp.CheckpointManager(tmp_path, item_names=('data',)) as manager:
    manager.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
    manager.wait_until_finished()
    expected = [b['index'] for b in take(iterator, 4)]
    resumed = train(source, seed=1)
    manager.restore(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(resumed)))
  np.testing.assert_array_equal(expected, [b['index'] for b in take(resumed, 4)])


def test_train_errors_name_the_problem():
  source = make_source(10)
  with pytest.raises(ValueError, match='multiple of the process count 3'):
    train(source, global_batch_size=4, process_count=3)
  with pytest.raises(ValueError, match='fewer than its batch'):
    train(source, global_batch_size=12)
  with pytest.raises(ValueError, match=r"audio/bus-lyon-\d+-0-c.wav' has device 'c'"):
    take(train(source, device_names=('a', 'b'), seed=0), 3)


@pytest.mark.parametrize('size,batch_size,process_count', [(10, 4, 1), (23, 4, 3), (5, 1, 2),
                                                           (2, 4, 3)])
def test_eval_visits_every_record_once_with_equal_batch_counts(size, batch_size, process_count):
  source = make_source(size)
  per_process = [list(input_pipeline.eval_batches(source, batch_size=batch_size, device_names=DEVICES,
                                            process_index=process, process_count=process_count))
                 for process in range(process_count)]
  assert len({len(batches) for batches in per_process}) == 1
  indices = []
  for batches in per_process:
    for batch in batches:
      assert batch['logmel'].shape == (batch_size, 4, 3) and batch['mask'].dtype == bool
      mask = batch['mask']
      assert np.all(batch['index'][~mask] == -1) and np.all(batch['logmel'][~mask] == 0)
      np.testing.assert_array_equal(batch['logmel'][mask][:, 0, 0], batch['index'][mask])
      np.testing.assert_array_equal(batch['device'][mask], batch['index'][mask] % 3)
      indices.extend(batch['index'][mask].tolist())
  assert sorted(indices) == list(range(size))


def test_pipeline_reads_the_real_tiny_tfds_build(tiny_data_dir):
  dataset = datasets.prepare(tiny_config(tiny_data_dir))
  train_source, test_source = dataset.sources['train'], dataset.sources['test']
  batch = next(input_pipeline.train_iterator(train_source, global_batch_size=8, seed=0,
                                       device_names=dataset.device_names))
  assert batch['logmel'].shape == (8,) + dataset.input_shape
  for position, index in enumerate(batch['index']):
    record = train_source[int(index)]
    np.testing.assert_array_equal(batch['logmel'][position], record['logmel'])
    assert dataset.device_names[batch['device'][position]] == record['device']
  batches = list(input_pipeline.eval_batches(test_source, batch_size=16,
                                       device_names=dataset.device_names))
  indices = np.concatenate([b['index'][b['mask']] for b in batches])
  np.testing.assert_array_equal(np.sort(indices), np.arange(len(test_source)))
  devices = np.concatenate([b['device'][b['mask']] for b in batches])
  assert set(devices.tolist()) == set(range(len(dataset.device_names)))


def test_train_split_in_memory_gives_the_files_records_and_batches(tiny_data_dir):
  config = tiny_config(tiny_data_dir)
  config.data.train_in_memory_mb = 0
  from_files = datasets.prepare(config).sources['train']
  config.data.train_in_memory_mb = 64
  held = datasets.prepare(config).sources['train']
  assert isinstance(held, memory.InMemorySource) and len(held) == len(from_files)
  for index in (0, len(held) // 2, len(held) - 1):
    expected, record = from_files[index], held[index]
    assert set(record) == set(expected)
    np.testing.assert_array_equal(record['logmel'], expected['logmel'])
    assert all(record[name] == expected[name] for name in expected if name != 'logmel')
  with pytest.raises(ValueError):
    held[0]['logmel'][0, 0] = 1.0
  options = dict(global_batch_size=8, seed=3, device_names=datasets.prepare(config).device_names)
  for a, b in zip(take(input_pipeline.train_iterator(from_files, **options), 5),
                  take(input_pipeline.train_iterator(held, **options), 5)):
    for name in a:
      np.testing.assert_array_equal(a[name], b[name])


def test_split_larger_than_the_budget_stays_on_file(tiny_data_dir):
  config = tiny_config(tiny_data_dir)
  config.data.train_in_memory_mb = 0
  source = datasets.prepare(config).sources['train']
  size = memory.logmel_megabytes(source)
  assert size > 0
  assert memory.in_memory(source, size * 0.99) is source
  assert isinstance(memory.in_memory(source, size * 1.01), memory.InMemorySource)
