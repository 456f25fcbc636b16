"""Device translation on the real synthetic_scenes/tiny build: parallel pairs, the split by
segment, the translator network, its training against the identity baseline and its workdir."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asc_jax.data import datasets
from asc_jax.models import translator as translator_lib
from asc_jax.translation import fit
from asc_jax.translation import pairs as pairs_lib
from asc_jax.translation import store

from conftest import load_config_file

CONFIG_FILE = os.path.join(os.path.dirname(__file__), '..', 'configs', 'translator.py')
SEEN = ('b', 'c', 's1', 's2', 's3')


def translator_config(data_dir: str):
  config = load_config_file(CONFIG_FILE, 'tiny')
  config.data.data_dir = data_dir
  config.data.num_workers = 1
  return config


@pytest.fixture(scope='module')
def tiny_dataset(tiny_data_dir):
  return datasets.prepare(translator_config(tiny_data_dir))


@pytest.fixture(scope='module')
def trained_workdir(tiny_data_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('translator'))
  report = fit.train_translator(translator_config(tiny_data_dir), workdir)
  return workdir, report


def test_pairs_join_device_a_with_each_other_device_of_the_same_segment(tiny_dataset):
  source = tiny_dataset.sources['train']
  scan = pairs_lib.scan_source(source, 'a')
  non_a = sum(count for device, count in tiny_dataset.device_counts['train'].items()
              if device != 'a')
  assert len(scan.pairs) == non_a == 20
  for pair in scan.pairs:
    a_record, other = source[pair.source_index], source[pair.target_index]
    assert a_record['device'] == 'a' and other['device'] == pair.target != 'a'
    assert a_record['segment_id'] == other['segment_id'] == pair.segment_id
  assert pairs_lib.pair_counts(scan.pairs) == {device: 4 for device in SEEN}


def test_split_is_by_segment_and_covers_every_device(tiny_dataset):
  scan = pairs_lib.scan_source(tiny_dataset.sources['train'], 'a')
  train_pairs, held_out = pairs_lib.split_by_segment(scan.pairs, 0.2, seed=0)
  assert len(train_pairs) + len(held_out) == len(scan.pairs)
  assert not {p.segment_id for p in train_pairs} & {p.segment_id for p in held_out}
  assert set(pairs_lib.pair_counts(train_pairs)) == set(SEEN)
  assert set(pairs_lib.pair_counts(held_out)) == set(SEEN)
  again = pairs_lib.split_by_segment(scan.pairs, 0.2, seed=0)
  assert again == (train_pairs, held_out)
  with pytest.raises(ValueError, match='holdout_fraction'):
    pairs_lib.split_by_segment(scan.pairs, 1.0, seed=0)


def test_pair_batches_read_the_right_records_and_mask_padding(tiny_dataset):
  source = tiny_dataset.sources['train']
  scan = pairs_lib.scan_source(source, 'a')
  reader = pairs_lib.PairBatchReader(source, scan.pairs, tiny_dataset.device_names)
  batch = reader(np.array([3, -1, 0]))
  assert batch['source'].shape == batch['target'].shape == (3, *tiny_dataset.input_shape)
  np.testing.assert_array_equal(batch['mask'], [True, False, True])
  np.testing.assert_array_equal(batch['source'][0], source[scan.pairs[3].source_index]['logmel'])
  np.testing.assert_array_equal(batch['target'][2], source[scan.pairs[0].target_index]['logmel'])
  assert tiny_dataset.device_names[batch['device'][0]] == scan.pairs[3].target
  assert not batch['source'][1].any()


def test_untrained_translator_is_the_identity_and_keeps_shape_and_dtype():
  model = translator_lib.DeviceTranslator(num_devices=9, num_mels=32, channels=(4, 8, 8),
                                          embed_dim=4, offset=-5.0, scale=3.0)
  x = jax.random.normal(jax.random.key(0), (2, 32, 63)) * 3.0 - 5.0
  device = jnp.array([1, 4])
  params = jax.jit(model.init)(jax.random.key(1), x, device)
  y = jax.jit(model.apply)(params, x, device)
  assert y.shape == x.shape and y.dtype == jnp.float32
  np.testing.assert_allclose(y, x, atol=1e-6)
  with pytest.raises(ValueError, match='log-mels'):
    model.apply(params, x[:, :16], device)


def test_trained_translator_beats_identity_on_held_out_pairs_for_every_seen_device(
    trained_workdir):
  _, report = trained_workdir
  assert set(report['devices']) == set(SEEN)
  for device, row in report['devices'].items():
    assert row['pairs'] >= 1
    assert row['translator_l1'] < 0.9 * row['identity_l1'], (device, row)
  assert report['all']['translator_mse'] < report['all']['identity_mse']


def test_workdir_round_trip_reproduces_the_report(trained_workdir, tiny_dataset):
  workdir, report = trained_workdir
  with open(os.path.join(workdir, store.REPORT_JSON), encoding='utf-8') as file:
    assert json.load(file) == json.loads(json.dumps(report))
  table = open(os.path.join(workdir, store.REPORT_TEXT), encoding='utf-8').read()
  assert all(device in table for device in SEEN) and 'identity L1' in table
  loaded = store.load(workdir)
  assert loaded.source_device == 'a' and loaded.target_devices == SEEN
  assert loaded.device_names == tiny_dataset.device_names
  assert loaded.input_shape == tuple(tiny_dataset.input_shape)
  source = tiny_dataset.sources['train']
  scan = pairs_lib.scan_source(source, 'a')
  _, held_out = pairs_lib.split_by_segment(scan.pairs, 0.2, seed=0)
  reader = pairs_lib.PairBatchReader(source, held_out, tiny_dataset.device_names)
  settings = translator_config('unused').translator
  again = fit.evaluate_pairs(fit.translator_run(loaded.model, settings, loaded.input_shape),
                             loaded.params, reader, held_out, batch_size=8)
  for device, row in report['devices'].items():
    np.testing.assert_allclose(again['devices'][device]['translator_l1'], row['translator_l1'],
                               rtol=1e-5)


def test_loading_a_workdir_without_translator_names_the_command(tmp_path):
  with pytest.raises(FileNotFoundError, match='asc_jax.translate'):
    store.load(str(tmp_path))


def test_device_ablation_variants_switch_on_one_part_each():
  path = os.path.join(os.path.dirname(__file__), '..', 'configs', 'device_ablation.py')
  switches = {}
  for variant in ('baseline', 'resnorm', 'translation', 'freqmixstyle', 'all'):
    config = load_config_file(path, variant)
    switches[variant] = (config.model.norm, config.augment.translation_p > 0,
                         config.augment.freq_mixstyle_p > 0)
    assert config.data.builder_config == 'small'
  assert switches == {'baseline': ('none', False, False), 'resnorm': ('resnorm', False, False),
                      'translation': ('none', True, False), 'freqmixstyle': ('none', False, True),
                      'all': ('resnorm', True, True)}
  with pytest.raises(ValueError, match='unknown variant'):
    load_config_file(path, 'mixup')


def test_real_audio_translator_variant_matches_the_real_audio_classifier():
  """configs/translator.py:real_audio reads the same dataset with the same front end as
  configs/real_audio.py (a translator must serve the classifier it augments), and names the
  other variants when given an unknown one."""
  translator = load_config_file(CONFIG_FILE, 'real_audio')
  classifier = load_config_file(
      os.path.join(os.path.dirname(__file__), '..', 'configs', 'real_audio.py'), 'recipe')
  assert translator.data.name == classifier.data.name == 'audio_folder'
  assert translator.data.to_dict() == classifier.data.to_dict()
  assert translator.features.to_dict() == classifier.features.to_dict()
  assert translator.features.sample_rate == 22050 and translator.features.n_mels == 128
  with pytest.raises(ValueError, match='real_audio'):
    load_config_file(CONFIG_FILE, 'nonexistent')
