"""Audio loading and the log-mel front end (numpy, soundfile and librosa only; never jax).

`load_audio` reads any WAV/FLAC encoding soundfile knows (16/24/32-bit integer, float), mono or
multi-channel (averaged to mono), at any rate (resampled), and pads or crops to a fixed length.
`logmel` turns a waveform into log(mel power + log_offset) as float32 [n_mels, frames].
Every function takes `features` as an ml_collections ConfigDict or a plain dict with the keys of
asc_jax.defaults.reference_features().
"""

import functools
import hashlib
import json
import os
import struct
from typing import Any, Mapping, Optional

import librosa
import numpy as np
import soundfile

FEATURE_KEYS = ('sample_rate', 'duration_s', 'n_fft', 'win_length', 'hop_length', 'window',
                'center', 'n_mels', 'fmin', 'fmax', 'log_offset')
RESAMPLE_TYPE = 'soxr_hq'


class AudioError(ValueError):
  """An audio file that cannot be turned into features; the message names the file."""


def feature_params(features: Mapping[str, Any]) -> dict:
  """The front end as a canonical JSON-able dict, with None values resolved."""
  missing = [key for key in FEATURE_KEYS if key not in features]
  if missing:
    raise KeyError(f'config.features lacks {missing}; start from '
                   'asc_jax.defaults.reference_features() and override what differs.')
  sample_rate = int(features['sample_rate'])
  n_fft = int(features['n_fft'])
  win_length = features['win_length']
  fmax = features['fmax']
  return dict(
      sample_rate=sample_rate, duration_s=float(features['duration_s']), n_fft=n_fft,
      win_length=n_fft if win_length is None else int(win_length),
      hop_length=int(features['hop_length']), window=str(features['window']),
      center=bool(features['center']), n_mels=int(features['n_mels']),
      fmin=float(features['fmin']), fmax=sample_rate / 2 if fmax is None else float(fmax),
      log_offset=float(features['log_offset']))


def feature_hash(params: Mapping[str, Any], length: int = 8) -> str:
  """A short stable hash of a JSON-able dict (used to name prepared datasets)."""
  text = json.dumps(dict(params), sort_keys=True, separators=(',', ':'))
  return hashlib.sha256(text.encode('utf-8')).hexdigest()[:length]


def num_samples(features: Mapping[str, Any]) -> int:
  params = feature_params(features)
  return int(round(params['sample_rate'] * params['duration_s']))


def num_frames(features: Mapping[str, Any]) -> int:
  """Frames per clip: 1 + samples // hop when centred, else 1 + (samples - n_fft) // hop."""
  params = feature_params(features)
  samples = num_samples(params)
  if params['center']:
    return 1 + samples // params['hop_length']
  return 1 + (samples - params['n_fft']) // params['hop_length']


def fit_length(waveform: np.ndarray, length: int) -> np.ndarray:
  """Crops to `length` samples or pads the end with zeros."""
  if waveform.shape[0] >= length:
    return waveform[:length]
  return np.pad(waveform, (0, length - waveform.shape[0]))


def to_rate(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
  if source_rate == target_rate:
    return waveform
  return librosa.resample(y=waveform, orig_sr=source_rate, target_sr=target_rate,
                          res_type=RESAMPLE_TYPE)


def wav_data_shortfall(path: str) -> Optional[tuple[int, int]]:
  """(bytes the WAV header's 'data' chunk declares, bytes the file holds after it) when the file
  holds fewer than declared (a truncated copy), else None; None for other formats too.

  libsndfile quietly shortens such a file to what is there, so a clip copied halfway would be
  read as a short clip and padded with silence.
  """
  size = os.path.getsize(path)
  with open(path, 'rb') as file:
    header = file.read(12)
    if len(header) < 12 or header[:4] != b'RIFF' or header[8:12] != b'WAVE':
      return None
    offset = 12
    while offset + 8 <= size:
      file.seek(offset)
      chunk_id, chunk_size = struct.unpack('<4sI', file.read(8))
      if chunk_id == b'data':
        available = size - offset - 8
        streaming = chunk_size in (0, 0xFFFFFFFF)   # writers that never filled the size in.
        return None if streaming or chunk_size <= available else (chunk_size, available)
      offset += 8 + chunk_size + (chunk_size & 1)
  return None


def read_checked(path: str) -> tuple[np.ndarray, int]:
  """float32 samples [frames, channels] and the rate of a complete, finite audio file.

  Raises AudioError naming the file when it cannot be decoded, is empty, holds NaN/inf, or is
  truncated (fewer frames than its header declares, WAV and FLAC).
  """
  try:
    shortfall = wav_data_shortfall(path)
    with soundfile.SoundFile(path) as audio:
      declared = audio.frames
      samples = audio.read(dtype='float32', always_2d=True)
      source_rate = audio.samplerate
  except Exception as error:  # soundfile raises several types for unreadable files.
    raise AudioError(f'{path}: cannot be read as audio ({error}). Replace the file with a valid '
                     'WAV/FLAC or remove its row from the CSV.') from error
  if shortfall is not None or samples.shape[0] < declared:
    detail = (f'its header declares {shortfall[0]:,} bytes of audio but only {shortfall[1]:,} '
              'follow' if shortfall else
              f'its header declares {declared:,} frames but only {samples.shape[0]:,} decode')
    raise AudioError(f'{path}: the file is truncated ({detail}), for example by an interrupted '
                     'copy. Copy it again or remove its row from the CSV.')
  return samples, int(source_rate)


def load_audio(path: str, sample_rate: int, duration_s: float) -> np.ndarray:
  """Reads `path` as float32 mono at `sample_rate`, padded or cropped to `duration_s`."""
  samples, source_rate = read_checked(path)
  if samples.shape[0] == 0:
    raise AudioError(f'{path}: the file holds no samples. Replace it or remove its row from '
                     'the CSV.')
  non_finite = int(np.size(samples) - np.count_nonzero(np.isfinite(samples)))
  if non_finite:
    raise AudioError(f'{path}: {non_finite} of {samples.size} samples are NaN or infinite. '
                     'Replace the file or remove its row from the CSV.')
  mono = samples.mean(axis=1, dtype=np.float32)
  mono = to_rate(mono, int(source_rate), int(sample_rate))
  return fit_length(mono, int(round(sample_rate * duration_s))).astype(np.float32)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
                   ) -> np.ndarray:
  """Slaney-normalised mel filterbank [n_mels, 1 + n_fft // 2], cached per front end."""
  return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                             htk=False, norm='slaney', dtype=np.float32)


def logmel(waveform: np.ndarray, features: Mapping[str, Any]) -> np.ndarray:
  """log(mel power + log_offset) of a mono waveform, float32 [n_mels, frames]."""
  params = feature_params(features)
  spectrum = librosa.stft(y=np.asarray(waveform, dtype=np.float32), n_fft=params['n_fft'],
                          hop_length=params['hop_length'], win_length=params['win_length'],
                          window=params['window'], center=params['center'], pad_mode='constant')
  power = np.abs(spectrum) ** 2
  filterbank = mel_filterbank(params['sample_rate'], params['n_fft'], params['n_mels'],
                              params['fmin'], params['fmax'])
  return np.log(filterbank @ power + params['log_offset']).astype(np.float32)


def warm_up(features: Mapping[str, Any]) -> None:
  """Runs the front end once on silence: loads librosa's lazily imported code in a new process."""
  params = feature_params(features)
  logmel(np.zeros(params['n_fft'], np.float32), params)


def extract_logmel(path: str, features: Mapping[str, Any]) -> np.ndarray:
  """load_audio + logmel for one file."""
  params = feature_params(features)
  return logmel(load_audio(path, params['sample_rate'], params['duration_s']), params)
