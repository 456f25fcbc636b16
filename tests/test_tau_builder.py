"""Real TFDS builds of the TAU 2020 Mobile builder on a fixture directory in the exact layout."""

import collections
import os

import numpy as np
import pytest
import soundfile

import fixtures
from asc_jax import features
from asc_jax.data import catalog
from asc_jax.data import datasets
from asc_jax.data import tau2020

TAU = 'tau_urban_acoustic_scenes_2020_mobile'


def all_records(source) -> list:
  return [source[index] for index in range(len(source))]


@pytest.fixture(scope='module')
def tau_build(tmp_path_factory):
  """(fixture clips, manual dir, config, PreparedDataset) built with two spawned workers."""
  root = str(tmp_path_factory.mktemp('tau'))
  clips = fixtures.write_tau_layout(root)
  config = fixtures.data_config(TAU, str(tmp_path_factory.mktemp('tfds')), root, num_workers=2)
  return clips, root, config, datasets.prepare(config)


def test_counts_names_and_shapes(tau_build):
  _, _, _, dataset = tau_build
  assert dataset.num_examples == {'train': 9, 'validation': 9, 'test': 12}
  assert dataset.class_names == tau2020.SCENES
  assert dataset.class_names[:3] == ('airport', 'bus', 'metro')
  assert dataset.device_names == ('a', 'b', 'c', 's1', 's2', 's3', 's4', 's5', 's6')
  assert dataset.input_shape == (32, 63)
  assert dataset.feature_params == features.feature_params(fixtures.tiny_features())
  assert os.path.basename(os.path.dirname(dataset.prepared_dir)).startswith('mel32x63_')


def test_records_carry_the_metadata_of_their_files(tau_build):
  clips, _, _, dataset = tau_build
  expected = {clip.filename: clip for clip in clips}
  for split, devices in (('train', fixtures.TRAIN_DEVICES), ('test', fixtures.TEST_DEVICES)):
    records = all_records(dataset.sources[split])
    if split == 'train':   # the validation split is carved out of fold1_train
      records += all_records(dataset.sources['validation'])
    assert collections.Counter(record['device'] for record in records) == {
        device: 6 if split == 'train' else 3 for device in devices}
    assert sorted(record['filename'] for record in records) == sorted(
        clip.filename for clip in clips if clip.split == split)
    for record in records:
      clip = expected[record['filename']]
      assert isinstance(record['label'], int) and isinstance(record['device'], str)
      assert dataset.class_names[record['label']] == clip.scene
      assert (record['device'], record['city']) == (clip.device, clip.city)
      assert record['segment_id'] == clip.segment_id
      assert record['identifier'] == '-'.join(clip.segment_id.split('-')[1:3])
      assert record['logmel'].shape == (32, 63) and record['logmel'].dtype == np.float32


def test_validation_holds_out_whole_locations_of_the_training_csv(tau_build):
  clips, _, _, dataset = tau_build
  splits = {split: all_records(dataset.sources[split]) for split in ('train', 'validation')}
  locations = {split: {record['identifier'] for record in records}
               for split, records in splits.items()}
  assert not locations['train'] & locations['validation']
  # Each fixture scene has two training locations (3 devices each): 0.3 of 6 clips rounds to
  # one whole location per scene, every device of it.
  for split, records in splits.items():
    assert collections.Counter(dataset.class_names[r['label']] for r in records) == {
        scene: 3 for scene in fixtures.SCENE_TONES_HZ}
    per_location = collections.defaultdict(set)
    for record in records:
      per_location[record['identifier']].add(record['device'])
    assert all(devices == set(fixtures.TRAIN_DEVICES) for devices in per_location.values())
  test_files = {clip.filename for clip in clips if clip.split == 'test'}
  assert not test_files & {record['filename'] for record in splits['validation']}


def test_validation_fraction_and_seed_choose_the_split(tmp_path):
  root = str(tmp_path / 'tau')
  fixtures.write_tau_layout(root)
  held = {}
  for seed in range(4):
    clips = tau2020.read_tau_catalog(root, 0.3, seed)
    assert [len(clips[split]) for split in ('train', 'validation', 'test')] == [9, 9, 12]
    held[seed] = frozenset(clip.identifier for clip in clips['validation'])
  assert tau2020.read_tau_catalog(root, 0.3, 0)['validation'] == tau2020.read_tau_catalog(
      root, 0.3, 0)['validation']
  assert len(set(held.values())) > 1   # the seed changes which locations are held out
  assert set(tau2020.read_tau_catalog(root, 0.0)) == {'train', 'test'}
  config = fixtures.data_config(TAU, str(tmp_path / 'tfds'), root, validation_fraction=0.0)
  assert datasets.prepare(config).num_examples == {'train': 18, 'test': 12}


def test_parallel_recordings_share_a_segment_id(tau_build):
  _, _, _, dataset = tau_build
  devices_per_segment = collections.defaultdict(set)
  for record in all_records(dataset.sources['test']):
    devices_per_segment[record['segment_id']].add(record['device'])
  assert devices_per_segment == {f'{scene}-lisbon-{900 + index}-5000': set(fixtures.TEST_DEVICES)
                                 for index, scene in enumerate(fixtures.SCENE_TONES_HZ)}


def test_stored_logmel_is_the_extracted_logmel(tau_build):
  _, root, config, dataset = tau_build
  source = dataset.sources['train']
  for record in source.__getitems__([0, 4, 8]):
    path = os.path.join(root, record['filename'])
    np.testing.assert_array_equal(record['logmel'], features.extract_logmel(path, config.features))
    tone = fixtures.SCENE_TONES_HZ[dataset.class_names[record['label']]]
    assert fixtures.peak_mel_bin(record['logmel']) == fixtures.tone_mel_bin(tone)


def test_prepare_again_reuses_the_build_and_front_ends_coexist(tau_build):
  _, _, config, dataset = tau_build
  info_path = os.path.join(dataset.prepared_dir, 'dataset_info.json')
  built_at = os.path.getmtime(info_path)
  assert datasets.prepare(config).prepared_dir == dataset.prepared_dir
  assert os.path.getmtime(info_path) == built_at
  wider = config.copy_and_resolve_references()
  wider.features.n_mels = 16
  wider.data.num_workers = 1
  other = datasets.prepare(wider)
  assert other.prepared_dir != dataset.prepared_dir and other.input_shape == (16, 63)
  assert other.num_examples == dataset.num_examples and os.path.exists(info_path)


def test_unknown_dataset_name_lists_the_valid_ones(tmp_path):
  config = fixtures.data_config('tau2019', str(tmp_path))
  with pytest.raises(ValueError, match='audio_folder.*synthetic_scenes.*tau_urban'):
    datasets.prepare(config)


@pytest.mark.parametrize('manual_dir', ['', 'absent', 'empty'])
def test_missing_manual_dir_says_where_the_data_comes_from(tmp_path, manual_dir):
  (tmp_path / 'empty').mkdir()
  path = str(tmp_path / manual_dir) if manual_dir else ''
  config = fixtures.data_config(TAU, str(tmp_path / 'tfds'), path)
  with pytest.raises(FileNotFoundError, match='3819968') as error:
    datasets.prepare(config)
  assert '--config.data.manual_dir=PATH' in str(error.value)
  assert not os.path.exists(tmp_path / 'tfds' / TAU)


def corrupt_inputs(root: str) -> None:
  """Breaks a fresh layout in every way the validation knows (see the asserts below)."""
  with open(os.path.join(root, 'audio', 'airport-lisbon-100-4000-a.wav'), 'wb') as file:
    file.write(b'RIFF....WAVEgarbage')                                   # train line 2
  os.remove(os.path.join(root, 'audio', 'bus-lisbon-901-5000-c.wav'))    # test line 8
  outside = os.path.join(os.path.dirname(root), 'outside.wav')
  fixtures.write_tone(outside, 500.0, 8000, 1, 'PCM_16')
  os.symlink(outside, os.path.join(root, 'audio', 'park-lisbon-903-5000-a.wav'))

  def edit_train(rows):
    rows[3][1] = 'bus'                                        # line 4: airport file labelled bus
    rows[4][1] = 'beach'                                      # line 5: unknown label
    rows[5][0] = '../outside.wav'                             # line 6: leaves the root
    return rows + [rows[7], ['audio/park-lisbon-903-5000-a.wav', 'park'],  # lines 20-21
                   ['/etc/passwd', 'park'], ['too', 'many', 'fields']]       # lines 22-23

  fixtures.rewrite_tsv(os.path.join(root, 'evaluation_setup', 'fold1_train.csv'), edit_train)

  def edit_meta(rows):
    rows[10][3] = 'd7'                                        # an unknown device
    return rows + [['audio/park-lisbon-903-5000-a.wav', 'park', 'lisbon-902', 'a']]

  fixtures.rewrite_tsv(os.path.join(root, 'meta.csv'), edit_meta)


def test_bad_inputs_give_one_error_listing_offenders_and_write_nothing(tmp_path):
  root = str(tmp_path / 'tau')
  fixtures.write_tau_layout(root)
  corrupt_inputs(root)
  data_dir = tmp_path / 'tfds'
  with pytest.raises(catalog.DatasetValidationError) as error:
    datasets.prepare(fixtures.data_config(TAU, str(data_dir), root))
  message = str(error.value)
  train_csv = os.path.join(root, 'evaluation_setup', 'fold1_train.csv')
  test_csv = os.path.join(root, 'evaluation_setup', 'fold1_evaluate.csv')
  for kind, count in [('unreadable audio', 1), ('missing audio file', 1),
                      ('label disagrees with meta.csv', 2), ('label disagrees with file name', 1),
                      ('unknown label', 1), ('path leaves the dataset root', 3),
                      ('duplicate row', 1), ('malformed row', 1), ('unknown device', 1),
                      ('missing from meta.csv', 2), ('malformed file name', 2)]:
    assert f'  {kind}: {count}\n' in message, (kind, message)
  for where in [f'{train_csv} line 2: unreadable audio', f'{test_csv} line 8: missing audio file',
                f'{train_csv} line 4: label disagrees with meta.csv',
                f'{train_csv} line 5: unknown label', f'{train_csv} line 6: path leaves',
                f'{train_csv} line 20: duplicate row', f'{train_csv} line 21: path leaves',
                f'{train_csv} line 22: path leaves', f'{train_csv} line 23: malformed row',
                f'{os.path.join(root, "meta.csv")} line 11: unknown device']:
    assert where in message, (where, message)
  assert 'nothing was written' in message
  assert fixtures.dataset_entries(data_dir) == []


def test_failure_while_writing_leaves_no_partial_dataset(tmp_path):
  root = str(tmp_path / 'tau')
  fixtures.write_tau_layout(root)
  # A valid header with NaN samples passes validation and fails during feature extraction.
  bad = os.path.join(root, 'audio', 'park-lisbon-902-5000-s4.wav')
  soundfile.write(bad, np.full(8000, np.nan), 8000, subtype='FLOAT')
  data_dir = tmp_path / 'tfds'
  config = fixtures.data_config(TAU, str(data_dir), root)
  with pytest.raises(features.AudioError, match='park-lisbon-902-5000-s4.wav'):
    datasets.prepare(config)
  assert fixtures.dataset_entries(data_dir) == []
  soundfile.write(bad, np.zeros(8000), 8000, subtype='PCM_16')
  assert datasets.prepare(config).num_examples == {'train': 9, 'validation': 9, 'test': 12}
