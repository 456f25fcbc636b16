"""Test fixtures written to disk: real audio files in the TAU 2020 Mobile layout, tiny front ends.

Every clip is a 1-second sine whose frequency depends on its scene, so a test can check that the
log-mel of a stored example peaks in the mel bin of that frequency. Encodings rotate over
24-bit and 16-bit PCM, 32-bit float, mono and stereo, 44.1 and 48 kHz.
"""

import csv
import dataclasses
import os

import librosa
import ml_collections
import numpy as np
import soundfile

from asc_jax import defaults
from asc_jax.data import builder_base

SCENE_TONES_HZ = {'airport': 500.0, 'bus': 1000.0, 'park': 2000.0}
CITIES = ('lisbon', 'vienna')
TRAIN_DEVICES = ('a', 'b', 's1')
TEST_DEVICES = ('a', 'b', 'c', 's4')
ENCODINGS = (  # (sample rate, channels, soundfile subtype)
    (44100, 1, 'PCM_24'), (48000, 2, 'PCM_16'), (44100, 2, 'PCM_24'), (48000, 1, 'PCM_16'),
    (44100, 1, 'FLOAT'))


@dataclasses.dataclass(frozen=True)
class FixtureClip:
  filename: str
  scene: str
  city: str
  device: str
  split: str

  @property
  def segment_id(self) -> str:
    return os.path.basename(self.filename).rsplit('-', 1)[0]


def tiny_features() -> ml_collections.ConfigDict:
  features = defaults.reference_features()
  features.update(dict(sample_rate=8000, duration_s=1.0, n_fft=256, hop_length=128, n_mels=32))
  return features


def data_config(name: str, data_dir: str, manual_dir: str = '', num_workers: int = 1,
                **data_overrides) -> ml_collections.ConfigDict:
  """A config with only the sections the data code reads: data and (tiny) features."""
  data = defaults.data_section(name)
  data.update(dict(data_dir=data_dir, manual_dir=manual_dir, num_workers=num_workers,
                   **data_overrides))
  return ml_collections.ConfigDict(dict(data=data, features=tiny_features()))


def tone_mel_bin(frequency: float) -> int:
  """The mel bin of the tiny front end whose filter weighs the FFT bin of `frequency` most."""
  filterbank = librosa.filters.mel(sr=8000, n_fft=256, n_mels=32, fmin=0.0, fmax=4000.0)
  return int(np.argmax(filterbank[:, int(round(frequency * 256 / 8000))]))


def peak_mel_bin(logmel: np.ndarray) -> int:
  """The loudest mel bin over the frames away from the clip's edges."""
  return int(np.argmax(logmel[:, 10:-10].mean(axis=1)))


def write_tone(path: str, frequency: float, sample_rate: int, channels: int, subtype: str,
               seconds: float = 1.0) -> None:
  time = np.arange(int(sample_rate * seconds)) / sample_rate
  tone = 0.5 * np.sin(2 * np.pi * frequency * time)
  samples = np.stack([tone] * channels, axis=1) if channels > 1 else tone
  os.makedirs(os.path.dirname(path), exist_ok=True)
  soundfile.write(path, samples, sample_rate, subtype=subtype)


def tau_clips() -> list:
  """Train: every scene x city recorded by a, b, s1; test: one more segment by a, b, c, s4."""
  clips = []
  for scene_index, scene in enumerate(SCENE_TONES_HZ):
    for city_index, city in enumerate(CITIES):
      location = f'{100 + 10 * scene_index + city_index}'
      for device in TRAIN_DEVICES:
        clips.append(FixtureClip(f'audio/{scene}-{city}-{location}-4000-{device}.wav', scene, city,
                                 device, 'train'))
    for device in TEST_DEVICES:
      clips.append(FixtureClip(f'audio/{scene}-{CITIES[0]}-{900 + scene_index}-5000-{device}.wav',
                               scene, CITIES[0], device, 'test'))
  return clips


def write_tsv(path: str, header: list, rows: list) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', newline='') as file:
    writer = csv.writer(file, delimiter='\t', lineterminator='\n')
    writer.writerow(header)
    writer.writerows(rows)


def write_tau_layout(root: str) -> list:
  """Writes audio/, meta.csv and evaluation_setup/fold1_*.csv under `root`; returns the clips."""
  clips = tau_clips()
  for index, clip in enumerate(clips):
    sample_rate, channels, subtype = ENCODINGS[index % len(ENCODINGS)]
    write_tone(os.path.join(root, clip.filename), SCENE_TONES_HZ[clip.scene], sample_rate,
               channels, subtype)
  write_tsv(os.path.join(root, 'meta.csv'),
            ['filename', 'scene_label', 'identifier', 'source_label'],
            [[clip.filename, clip.scene, '-'.join(clip.segment_id.split('-')[1:3]), clip.device]
             for clip in clips])
  for split, csv_name in (('train', 'fold1_train.csv'), ('test', 'fold1_evaluate.csv')):
    write_tsv(os.path.join(root, 'evaluation_setup', csv_name), ['filename', 'scene_label'],
              [[clip.filename, clip.scene] for clip in clips if clip.split == split])
  write_tsv(os.path.join(root, 'evaluation_setup', 'fold1_test.csv'), ['filename'],
            [[clip.filename] for clip in clips if clip.split == 'test'])
  return clips


def read_tsv(path: str) -> list:
  with open(path, newline='') as file:
    return list(csv.reader(file, delimiter='\t'))


def rewrite_tsv(path: str, edit) -> None:
  """Rewrites a TSV with `edit(rows)` applied to its rows (header included)."""
  rows = edit(read_tsv(path))
  write_tsv(path, rows[0], rows[1:])


def dataset_entries(data_dir) -> list:
  """What builds left in `data_dir`, its build lock file (empty, kept) aside; [] when absent."""
  if not os.path.exists(data_dir):
    return []
  return sorted(name for name in os.listdir(data_dir) if name != builder_base.BUILD_LOCK)
