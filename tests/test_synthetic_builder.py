"""Real TFDS builds of synthetic_scenes/tiny: counts, devices, parallel recordings, values."""

import collections
import os
import subprocess
import sys

import numpy as np
import pytest

import fixtures
from asc_jax.data import datasets
from asc_jax.data import synthetic_audio
from asc_jax.data import synthetic_scenes
from conftest import tiny_config


@pytest.fixture(scope='module')
def tiny(tiny_data_dir):
  return datasets.prepare(tiny_config(tiny_data_dir))


def records(source) -> list:
  return [source[index] for index in range(len(source))]


def test_counts_per_split_and_device(tiny):
  assert tiny.class_names == synthetic_audio.SCENES
  assert tiny.device_names == ('a', 'b', 'c', 's1', 's2', 's3', 's4', 's5', 's6')
  assert tiny.num_examples == {'train': 60, 'validation': 15, 'test': 90}
  assert tiny.device_counts == {'train': {'a': 40, 'b': 4, 'c': 4, 's1': 4, 's2': 4, 's3': 4},
                                'validation': {'a': 10, 'b': 1, 'c': 1, 's1': 1, 's2': 1, 's3': 1},
                                'test': {device: 10 for device in tiny.device_names}}
  assert tiny.input_shape == (32, 63)
  assert os.path.basename(os.path.dirname(tiny.prepared_dir)).startswith('tiny_mel32x63_')
  train = records(tiny.sources['train'])
  assert collections.Counter(record['device'] for record in train) == tiny.device_counts['train']
  assert collections.Counter(record['label'] for record in train if record['device'] == 'a') == {
      label: 4 for label in range(10)}


def test_validation_locations_are_used_by_neither_train_nor_test(tiny):
  by_split = {split: records(tiny.sources[split]) for split in ('train', 'validation', 'test')}
  locations = {split: {record['identifier'] for record in split_records}
               for split, split_records in by_split.items()}
  segments = {split: {record['segment_id'] for record in split_records}
              for split, split_records in by_split.items()}
  for first, second in (('train', 'validation'), ('validation', 'test'), ('train', 'test')):
    assert not locations[first] & locations[second]
    assert not segments[first] & segments[second]
  validation = by_split['validation']
  assert collections.Counter(r['label'] for r in validation if r['device'] == 'a') == {
      label: 1 for label in range(10)}
  device_a = {record['segment_id'] for record in validation if record['device'] == 'a'}
  assert {record['segment_id'] for record in validation} == device_a   # copies of a-segments
  # Train and test are the clips of generator 2: the validation split only adds clips.
  assert [spec.filename for spec in synthetic_audio.clip_specs('tiny', 'train')][:3] == [
      'audio/airport-barcelona-1000-1000000-a.wav', 'audio/bus-barcelona-1100-1100000-a.wav',
      'audio/metro-barcelona-1200-1200000-a.wav']


def test_parallel_recordings_share_segment_ids(tiny):
  devices_per_segment = collections.defaultdict(set)
  for record in records(tiny.sources['test']):
    devices_per_segment[record['segment_id']].add(record['device'])
    assert record['filename'] == f'audio/{record["segment_id"]}-{record["device"]}.wav'
    assert record['segment_id'].startswith(tiny.class_names[record['label']] + '-')
    assert record['identifier'] == '-'.join(record['segment_id'].split('-')[1:3])
    assert record['city'] == record['segment_id'].split('-')[1]
  assert len(devices_per_segment) == 10
  assert all(devices == set(tiny.device_names) for devices in devices_per_segment.values())
  train = records(tiny.sources['train'])
  device_a = {record['segment_id'] for record in train if record['device'] == 'a'}
  assert {record['segment_id'] for record in train if record['device'] == 'b'} <= device_a


def test_stored_logmel_is_the_rendered_clip(tiny):
  specs = {spec.filename: spec for spec in synthetic_audio.clip_specs('tiny', 'test')}
  for record in tiny.sources['test'].__getitems__([0, 44, 89]):
    expected = synthetic_scenes.render_logmel(specs[record['filename']], 'tiny',
                                              tiny.feature_params)
    np.testing.assert_array_equal(record['logmel'], expected)
    assert np.all(np.isfinite(record['logmel']))
  test = records(tiny.sources['test'])
  segment = test[0]['segment_id']
  by_device = {record['device']: record['logmel'] for record in test
               if record['segment_id'] == segment}
  assert np.abs(by_device['a'] - by_device['s6']).mean() > 0.1   # devices change the sound.


def test_front_end_rate_differs_from_the_preset(tmp_path):
  config = fixtures.data_config('synthetic_scenes', str(tmp_path), builder_config='tiny')
  config.features.update(dict(sample_rate=16000, n_fft=512, hop_length=256))
  dataset = datasets.prepare(config)
  assert dataset.input_shape == (32, 63)
  assert dataset.feature_params['sample_rate'] == 16000
  assert dataset.num_examples == {'train': 60, 'validation': 15, 'test': 90}


def test_unknown_preset_lists_the_presets(tmp_path):
  config = fixtures.data_config('synthetic_scenes', str(tmp_path), builder_config='huge')
  with pytest.raises(ValueError, match="'huge'.*small.*tau_shaped.*tiny"):
    datasets.prepare(config)


def test_prepare_command_prints_counts_per_split_and_device(tiny_data_dir):
  completed = subprocess.run(
      [sys.executable, '-m', 'asc_jax.data.prepare', '--config=configs/quickstart.py:tiny',
       f'--config.data.data_dir={tiny_data_dir}'],
      cwd=os.path.join(os.path.dirname(__file__), '..'), capture_output=True, text=True,
      check=True, timeout=120)
  lines = completed.stdout.splitlines()
  assert 'input shape (32, 63)' in lines[-5]
  assert lines[-4].split() == ['split', 'a', 'b', 'c', 's1', 's2', 's3', 's4', 's5', 's6', 'total']
  assert lines[-3].split() == ['train', '40', '4', '4', '4', '4', '4', '0', '0', '0', '60']
  assert lines[-2].split() == ['validation', '10', '1', '1', '1', '1', '1', '0', '0', '0', '15']
  assert lines[-1].split() == ['test'] + ['10'] * 9 + ['90']
