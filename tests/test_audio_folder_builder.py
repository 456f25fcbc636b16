"""Real TFDS builds of the audio_folder builder: split and fold columns, comma and TAB CSVs."""

import collections
import csv
import os
import subprocess
import sys

import pytest

import fixtures
from asc_jax.data import builder_base
from asc_jax.data import catalog
from asc_jax.data import datasets

# Prepares the dataset of the JSON config in argv[1] and prints its split sizes.
PREPARE_SCRIPT = ('import json, sys\n'
                  'import ml_collections\n'
                  'from asc_jax.data import datasets\n'
                  'config = ml_collections.ConfigDict(json.loads(sys.argv[1]))\n'
                  'print(datasets.prepare(config).num_examples)\n')
TONES_HZ = {'dog': 250.0, 'rain': 750.0, 'siren': 1500.0}  # on FFT bins 8, 24, 48


def write_folder(root: str, header: list, rows: list, delimiter: str = ',') -> None:
  """Writes a 1-second tone per row (frequency by label) and the CSV `meta/labels.csv`."""
  for index, row in enumerate(rows):
    fields = dict(zip(header, row))
    path = os.path.join(root, fields['filename'])
    if not os.path.exists(path) and fields.get('label') in TONES_HZ:
      sample_rate, channels, subtype = fixtures.ENCODINGS[index % len(fixtures.ENCODINGS)]
      fixtures.write_tone(path, TONES_HZ[fields['label']], sample_rate, channels, subtype)
  os.makedirs(os.path.join(root, 'meta'), exist_ok=True)
  with open(os.path.join(root, 'meta', 'labels.csv'), 'w', newline='') as file:
    writer = csv.writer(file, delimiter=delimiter, lineterminator='\n')
    writer.writerow(header)
    writer.writerows(rows)


def split_rows() -> list:
  """12 clips: 3 labels x 4, recorded by phone or mic; the last clip of each label is test."""
  return [[f'clips/{label}_{index}.wav', label, 'phone' if index % 2 else 'mic',
           'test' if index == 3 else 'train'] for label in TONES_HZ for index in range(4)]


def folder_config(tmp_path, **data_overrides):
  data_overrides = {'csv': 'meta/labels.csv', **data_overrides}
  return fixtures.data_config('audio_folder', str(tmp_path / 'tfds'), str(tmp_path / 'folder'),
                              **data_overrides)


def records(source) -> list:
  return [source[index] for index in range(len(source))]


def test_split_column_with_devices(tmp_path):
  write_folder(str(tmp_path / 'folder'), ['filename', 'label', 'device', 'split'], split_rows())
  dataset = datasets.prepare(folder_config(tmp_path, validation_fraction=0.0))
  assert dataset.num_examples == {'train': 9, 'test': 3}
  assert dataset.class_names == ('dog', 'rain', 'siren')
  assert dataset.device_names == ('mic', 'phone')
  assert dataset.input_shape == (32, 63)
  test = records(dataset.sources['test'])
  assert sorted(record['filename'] for record in test) == [
      'clips/dog_3.wav', 'clips/rain_3.wav', 'clips/siren_3.wav']
  for record in records(dataset.sources['train']) + test:
    label = dataset.class_names[record['label']]
    assert record['filename'].startswith(f'clips/{label}_')
    index = int(record['filename'][-5])
    assert record['device'] == ('phone' if index % 2 else 'mic')
    assert record['segment_id'] == record['filename'][:-4]
    assert (record['city'], record['identifier']) == ('', record['segment_id'])
    assert fixtures.peak_mel_bin(record['logmel']) == fixtures.tone_mel_bin(TONES_HZ[label])


def test_fold_column_tab_separated_without_devices(tmp_path):
  rows = [[f'{label}_{fold}.wav', label, str(fold)] for label in TONES_HZ for fold in range(1, 5)]
  write_folder(str(tmp_path / 'folder'), ['filename', 'label', 'fold'], rows, delimiter='\t')
  config = folder_config(tmp_path, train_folds='1, 2', test_folds='3', validation_fraction=0.0)
  dataset = datasets.prepare(config)
  assert dataset.num_examples == {'train': 6, 'test': 3}
  assert dataset.device_names == ('unknown',)
  assert collections.Counter(record['filename'][-5] for record in
                             records(dataset.sources['train'])) == {'1': 3, '2': 3}
  config.data.test_folds = '4'
  other = datasets.prepare(config)
  assert other.prepared_dir != dataset.prepared_dir
  assert {record['filename'] for record in records(other.sources['test'])} == {
      'dog_4.wav', 'rain_4.wav', 'siren_4.wav'}


def test_default_hold_out_is_seeded_device_stratified_and_never_from_test(tmp_path):
  write_folder(str(tmp_path / 'folder'), ['filename', 'label', 'device', 'split'], split_rows())
  dataset = datasets.prepare(folder_config(tmp_path))   # validation_fraction 0.3 by default
  # 6 mic and 3 phone training rows: 0.3 of them is 2 mic rows and 1 phone row.
  assert dataset.num_examples == {'train': 6, 'validation': 3, 'test': 3}
  assert dataset.device_counts['validation'] == {'mic': 2, 'phone': 1}
  files = {split: {r['filename'] for r in records(dataset.sources[split])}
           for split in ('train', 'validation', 'test')}
  assert files['test'] == {'clips/dog_3.wav', 'clips/rain_3.wav', 'clips/siren_3.wav'}
  assert not files['train'] & files['validation']
  assert len(files['train'] | files['validation']) == 9
  again = datasets.prepare(folder_config(tmp_path))
  assert {r['filename'] for r in records(again.sources['validation'])} == files['validation']
  other_seed = datasets.prepare(folder_config(tmp_path, validation_seed=1))
  assert other_seed.prepared_dir != dataset.prepared_dir


def grouped_rows() -> list:
  """30 training rows: 10 recordings (group r0..r9) x 3 slices, device a, plus a copy of the
  first slice of every recording on device b; 3 test rows of group r0 (test may share groups)."""
  rows = []
  for recording in range(10):
    label = list(TONES_HZ)[recording % 3]
    for piece in range(3):
      segment = f'r{recording}-{piece}'
      rows.append([f'clips/{segment}-a.wav', label, 'a', 'train', f'r{recording}', segment])
      if piece == 0:
        rows.append([f'clips/{segment}-b.wav', label, 'b', 'train', f'r{recording}', segment])
  rows += [[f'clips/t{index}.wav', label, 'a', 'test', 'r0', f't{index}']
           for index, label in enumerate(TONES_HZ)]
  return rows


def test_hold_out_keeps_every_group_on_one_side(tmp_path):
  header = ['filename', 'label', 'device', 'split', 'group', 'segment']
  write_folder(str(tmp_path / 'folder'), header, grouped_rows())
  for seed in range(3):
    dataset = datasets.prepare(folder_config(tmp_path, validation_fraction=0.2,
                                             validation_seed=seed))
    split_records = {split: records(dataset.sources[split]) for split in ('train', 'validation')}
    groups = {split: {r['identifier'] for r in rs} for split, rs in split_records.items()}
    assert not groups['train'] & groups['validation']
    assert len(groups['validation']) == 2   # 0.2 of 10 recordings (4 clips each)
    assert dataset.num_examples == {'train': 32, 'validation': 8, 'test': 3}
    assert dataset.device_counts['validation'] == {'a': 6, 'b': 2}
    by_segment = collections.defaultdict(set)
    for r in split_records['validation']:
      by_segment[r['segment_id']].add(r['device'])
    assert sum(devices == {'a', 'b'} for devices in by_segment.values()) == 2


def test_validation_from_the_split_column_or_folds(tmp_path):
  rows = split_rows()
  rows[0][3], rows[4][3] = 'val', 'Validation'
  write_folder(str(tmp_path / 'folder'), ['filename', 'label', 'device', 'split'], rows)
  dataset = datasets.prepare(folder_config(tmp_path))   # named rows: no extra hold-out
  assert dataset.num_examples == {'train': 7, 'validation': 2, 'test': 3}
  assert {r['filename'] for r in records(dataset.sources['validation'])} == {
      'clips/dog_0.wav', 'clips/rain_0.wav'}
  folds = tmp_path / 'folds'
  fold_rows = [[f'{label}_{fold}.wav', label, str(fold)] for label in TONES_HZ
               for fold in range(1, 5)]
  write_folder(str(folds / 'folder'), ['filename', 'label', 'fold'], fold_rows)
  by_fold = datasets.prepare(folder_config(folds, train_folds='1,2', validation_folds='3',
                                           test_folds='4'))
  assert by_fold.num_examples == {'train': 6, 'validation': 3, 'test': 3}
  with pytest.raises(ValueError, match='validation_folds'):
    datasets.prepare(folder_config(folds, train_folds='1,2', validation_folds='2',
                                   test_folds='4'))


def test_a_group_on_both_sides_of_a_named_validation_split_is_refused(tmp_path):
  rows = [row[:4] + [row[4]] for row in grouped_rows()]
  rows[0][3] = 'validation'   # one slice of recording r0 in validation, the others in train
  write_folder(str(tmp_path / 'folder'), ['filename', 'label', 'device', 'split', 'group'], rows)
  with pytest.raises(catalog.DatasetValidationError, match=r"both train and validation.*'r0'"):
    datasets.prepare(folder_config(tmp_path))


def test_bad_folder_lists_offenders_and_writes_nothing(tmp_path):
  rows = split_rows()
  rows[1][3] = 'holdout'                      # line 3: unknown split
  rows[2][0] = '../escape.wav'                # line 4: leaves the root
  rows.append(list(rows[5]))                  # line 14: duplicate of line 7
  rows.append(['clips/missing.wav', 'cat', 'mic', 'train'])   # line 15: no such file
  write_folder(str(tmp_path / 'folder'), ['filename', 'label', 'device', 'split'], rows)
  with pytest.raises(catalog.DatasetValidationError) as error:
    datasets.prepare(folder_config(tmp_path))
  message = str(error.value)
  csv_path = os.path.join(str(tmp_path / 'folder'), 'meta', 'labels.csv')
  for where in [f'{csv_path} line 3: malformed row', f'{csv_path} line 4: path leaves',
                f'{csv_path} line 14: duplicate row', f'{csv_path} line 15: missing audio file']:
    assert where in message, (where, message)
  assert fixtures.dataset_entries(tmp_path / 'tfds') == []


def test_missing_columns_and_settings_are_named(tmp_path):
  write_folder(str(tmp_path / 'folder'), ['filename', 'category', 'split'],
               [['a.wav', 'dog', 'train']])
  with pytest.raises(catalog.DatasetValidationError,
                     match=r"line 1.*lacks the column\(s\) \['label'\]"):
    datasets.prepare(folder_config(tmp_path))
  with pytest.raises(FileNotFoundError, match='config.data.csv is not set'):
    datasets.prepare(folder_config(tmp_path, csv=''))
  with pytest.raises(ValueError, match='train_folds'):
    datasets.prepare(folder_config(tmp_path, train_folds='1'))


def read_until(stream, text: str) -> str:
  """Lines of `stream` up to and including the first one holding `text` (fails at its end)."""
  lines = []
  while not lines or text not in lines[-1]:
    lines.append(stream.readline())
    assert lines[-1], f'the stream ended before {text!r}: {"".join(lines)}'
  return ''.join(lines)


def test_runs_started_together_build_the_dataset_once(tmp_path):
  """Two processes prepare the same dataset while a third holds the data directory's build lock:
  both wait; then one builds, the other reads what it built (nothing is built twice or lost)."""
  write_folder(str(tmp_path / 'folder'), ['filename', 'label', 'device', 'split'], split_rows())
  config = folder_config(tmp_path, validation_fraction=0.0)
  data_root = builder_base.resolve_data_dir(config.data.data_dir)
  os.makedirs(data_root)
  with builder_base.build_lock(data_root):
    runs = [subprocess.Popen([sys.executable, '-c', PREPARE_SCRIPT, config.to_json()],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    notes = [read_until(run.stderr, 'waiting for another asc_jax build') for run in runs]
  for index, run in enumerate(runs):
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    assert stdout.strip().splitlines()[-1] == "{'train': 9, 'test': 3}"
    notes[index] += stderr
  assert sorted('building 12 clips' in note for note in notes) == [False, True]
  assert sorted('was built by another process meanwhile' in note for note in notes) == [
      False, True]
  assert datasets.prepare(config).num_examples == {'train': 9, 'test': 3}
