"""A file whose header promises more audio than it holds (an interrupted copy) is an error that
names the file: when it is read, when a dataset's CSVs are validated (WAV) and when log-mels are
extracted (FLAC, found only by decoding); the build then writes nothing."""

import os

import numpy as np
import pytest
import soundfile

from asc_jax import features
from asc_jax.data import catalog
from asc_jax.data import datasets

import fixtures

TAU = 'tau_urban_acoustic_scenes_2020_mobile'


def truncate(path: str, keep: float = 0.4) -> None:
  with open(path, 'rb') as file:
    data = file.read()
  with open(path, 'wb') as file:
    file.write(data[:int(len(data) * keep)])


@pytest.mark.parametrize('subtype', ['PCM_16', 'PCM_24', 'FLOAT'])
def test_a_truncated_wav_is_refused_and_a_complete_one_is_read(tmp_path, subtype):
  path = str(tmp_path / 'clip.wav')
  fixtures.write_tone(path, 500.0, 8000, 2, subtype)
  assert features.wav_data_shortfall(path) is None
  assert features.load_audio(path, 8000, 1.0).shape == (8000,)
  truncate(path)
  declared, held = features.wav_data_shortfall(path)
  assert held < declared
  with pytest.raises(features.AudioError, match='truncated') as error:
    features.load_audio(path, 8000, 1.0)
  assert path in str(error.value) and f'{declared:,}' in str(error.value)


def test_a_truncated_flac_is_refused(tmp_path):
  path = str(tmp_path / 'clip.flac')
  soundfile.write(path, 0.3 * np.sin(np.arange(16000) / 7.0), 16000, subtype='PCM_16')
  truncate(path)
  with pytest.raises(features.AudioError, match='clip.flac'):
    features.load_audio(path, 16000, 1.0)


def test_a_streamed_wav_without_a_data_size_is_not_called_truncated(tmp_path):
  path = str(tmp_path / 'stream.wav')
  fixtures.write_tone(path, 500.0, 8000, 1, 'PCM_16')
  with open(path, 'r+b') as file:
    data = file.read()
    file.seek(data.index(b'data') + 4)
    file.write(b'\xff\xff\xff\xff')
  assert features.wav_data_shortfall(path) is None


def test_a_truncated_wav_fails_the_build_naming_file_and_line(tmp_path):
  root = str(tmp_path / 'tau')
  clips = fixtures.write_tau_layout(root)
  victim = next(clip for clip in clips if clip.split == 'train')
  truncate(os.path.join(root, victim.filename))
  data_dir = tmp_path / 'tfds'
  with pytest.raises(catalog.DatasetValidationError) as error:
    datasets.prepare(fixtures.data_config(TAU, str(data_dir), root))
  message = str(error.value)
  assert '  truncated audio: 1\n' in message
  assert victim.filename in message and 'fold1_train.csv line' in message
  assert fixtures.dataset_entries(data_dir) == []


def test_a_truncated_flac_fails_extraction_and_leaves_no_dataset(tmp_path):
  root = str(tmp_path / 'folder')
  os.makedirs(root)
  rows = []
  for index in range(6):
    name = f'clip{index}.flac'
    soundfile.write(os.path.join(root, name), 0.3 * np.sin(np.arange(8000) * (index + 1) / 9.0),
                    8000, subtype='PCM_16')
    rows.append([name, 'park' if index % 2 else 'bus', 'a', 'test' if index == 5 else 'train'])
  truncate(os.path.join(root, 'clip3.flac'))
  fixtures.write_tsv(os.path.join(root, 'meta.csv'), ['filename', 'label', 'device', 'split'], rows)
  config = fixtures.data_config('audio_folder', str(tmp_path / 'tfds'), root, csv='meta.csv')
  with pytest.raises(features.AudioError, match='clip3.flac'):
    datasets.prepare(config)
  prepared = tmp_path / 'tfds' / 'audio_folder'
  assert not prepared.exists() or not any(
      name.endswith('.array_record') or name == 'dataset_info.json'
      for _, _, names in os.walk(prepared) for name in names)
