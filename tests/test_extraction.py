"""Tests for asc_jax.data.extraction: the build-wide pool of spawned extraction workers."""

import functools
import os

import numpy as np
import pytest

from asc_jax import defaults
from asc_jax import features as features_lib
from asc_jax.data import builder_base
from asc_jax.data import extraction

import fixtures


def feature_shape() -> tuple:
  params = features_lib.feature_params(fixtures.tiny_features())
  return params['n_mels'], features_lib.num_frames(params)


def filled(value: float) -> np.ndarray:
  return np.full(feature_shape(), value, np.float32)


def test_two_workers_return_every_split_in_order_through_reused_slots(tmp_path):
  fill = functools.partial(np.full, feature_shape(), dtype=np.float32)
  work = {'train': [float(value) for value in range(70)],
          'test': [float(value) for value in range(100, 133)]}
  # max_ahead=16: four tasks of CLIPS_PER_TASK clips in flight, so slots are reused many times.
  with extraction.ExtractionPool(2, fixtures.tiny_features(), str(tmp_path),
                                 max_ahead=16) as pool:
    assert pool.max_ahead_tasks == 4
    results = pool.schedule(fill, work)
    train = list(results['train'])
    test = list(results['test'])
  for values, arrays in ((work['train'], train), (work['test'], test)):
    assert len(arrays) == len(values)
    for value, array in zip(values, arrays):
      assert array.dtype == np.float32 and np.array_equal(array, filled(value))
  assert os.listdir(tmp_path) == []   # the slot file is removed.


def test_one_worker_extracts_in_this_process_lazily(tmp_path):
  calls = []

  def record(value):
    calls.append(value)
    return filled(value)

  with extraction.ExtractionPool(1, fixtures.tiny_features(), str(tmp_path)) as pool:
    results = pool.schedule(record, {'train': [1.0, 2.0], 'test': [3.0]})
    assert not calls
    assert [float(array[0, 0]) for array in results['train']] == [1.0, 2.0]
    assert calls == [1.0, 2.0]
    assert [float(array[0, 0]) for array in results['test']] == [3.0]


def test_a_worker_error_names_the_file_and_the_pool_shuts_down(tmp_path):
  audio = tmp_path / 'audio'
  audio.mkdir()
  good = str(audio / 'good.wav')
  fixtures.write_tone(good, 1000.0, 8000, 1, 'PCM_16')
  broken = str(audio / 'broken.wav')
  with open(broken, 'wb') as handle:
    handle.write(b'RIFF0000WAVEnot audio at all')
  extract = builder_base.file_extractor(features_lib.feature_params(fixtures.tiny_features()))
  scratch = tmp_path / 'scratch'
  scratch.mkdir()
  with pytest.raises(features_lib.AudioError, match='broken.wav'):
    with extraction.ExtractionPool(2, fixtures.tiny_features(), str(scratch),
                                   max_ahead=16) as pool:
      results = pool.schedule(extract, {'train': [good] * 20 + [broken] + [good] * 200})
      first = next(results['train'])
      assert first.shape == feature_shape() and np.isfinite(first).all()
      list(results['train'])
  assert os.listdir(scratch) == []


def test_a_result_larger_than_its_slot_is_refused(tmp_path):
  slots = extraction.ResultSlots.create(str(tmp_path), slots=2, slot_bytes=16)
  try:
    assert slots.put(1, np.arange(4, dtype=np.float32)) == ((4,), '<f4')
    assert np.array_equal(slots.view(1, (4,), '<f4'), np.arange(4))
    with pytest.raises(ValueError, match='exceeds the 16-byte slot'):
      slots.put(0, np.arange(5, dtype=np.float32))
  finally:
    slots.remove()
  assert os.listdir(tmp_path) == []


def test_clips_in_flight_are_capped_by_memory(tmp_path):
  tau_shaped = extraction.ExtractionPool(2, defaults.reference_features(), str(tmp_path),
                                         max_ahead=4096)
  assert tau_shaped.slot_bytes == 256 * 431 * 4
  in_flight = tau_shaped.max_ahead_tasks * extraction.CLIPS_PER_TASK
  assert in_flight * tau_shaped.slot_bytes <= extraction.MAX_AHEAD_BYTES
  assert in_flight > extraction.MAX_AHEAD_BYTES // tau_shaped.slot_bytes - extraction.CLIPS_PER_TASK


def test_a_pool_that_cannot_take_tasks_fails_the_reader_instead_of_hanging(tmp_path):
  fill = functools.partial(np.full, feature_shape(), dtype=np.float32)
  with extraction.ExtractionPool(2, fixtures.tiny_features(), str(tmp_path)) as pool:
    pool._pool.close()   # apply_async now raises: as if the pool had broken.
    results = pool.schedule(fill, {'train': [1.0, 2.0]})
    with pytest.raises(ValueError, match='Pool not running'):
      list(results['train'])
