"""The log-mel front end from an export's manifest alone, in NumPy (no librosa): what an embedded
implementation reproduces. `logmel(waveform, front_end, filterbank)` equals asc_jax.features.logmel
for the same parameters (a test checks it to 1e-5)."""

import os

import numpy as np

from asc_jax.compress import export as int8_export


def load(export_dir: str, manifest: dict) -> tuple[dict, np.ndarray]:
  """(manifest['front_end'], the float32 mel filterbank [n_mels, 1 + n_fft // 2])."""
  front_end = manifest.get('front_end')
  if not front_end:
    raise ValueError(f'{export_dir}: the manifest has no front_end (an export written before '
                     'asc_jax 0.1 issue 14); run python -m asc_jax.export, which adds it.')
  path = os.path.join(export_dir, front_end['mel']['file'])
  return front_end, np.load(path, allow_pickle=False)


def periodic_window(name: str, win_length: int, n_fft: int) -> np.ndarray:
  if not name.startswith('hann'):
    raise ValueError(f'window {name!r}: only hann is implemented here.')
  n = np.arange(win_length)
  window = 0.5 - 0.5 * np.cos(2 * np.pi * n / win_length)
  left = (n_fft - win_length) // 2
  return np.pad(window, (left, n_fft - win_length - left))


def logmel(waveform: np.ndarray, front_end: dict, filterbank: np.ndarray) -> np.ndarray:
  """float32 [n_mels, frames] log-mel of a mono waveform at the front end's sample rate."""
  stft = front_end['stft']
  n_fft, hop = stft['n_fft'], stft['hop_length']
  window = periodic_window(stft['window'], stft['win_length'], n_fft)
  signal = np.asarray(waveform, np.float32).astype(np.float64)
  if stft['center']:
    signal = np.pad(signal, n_fft // 2)
  frames = 1 + (len(signal) - n_fft) // hop
  index = hop * np.arange(frames)[:, None] + np.arange(n_fft)[None, :]
  power = np.abs(np.fft.rfft(signal[index] * window, axis=-1)) ** 2   # [frames, bins]
  mel = filterbank.astype(np.float64) @ power.T
  return np.log(mel + front_end['log']['log_offset']).astype(np.float32)


def description(export_dir: str, manifest: dict) -> dict:
  """The manifest's front end, or one rebuilt from its feature_params (older exports)."""
  if manifest.get('front_end'):
    return manifest['front_end']
  return int8_export.front_end_description(manifest['feature_params'])
