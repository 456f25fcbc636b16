"""Tests for asc_jax.features: reading every common encoding, errors, and the log-mel values."""

import subprocess
import sys

import librosa
import numpy as np
import pytest
import soundfile

import fixtures
from asc_jax import defaults
from asc_jax import features


@pytest.mark.parametrize('sample_rate,channels,subtype,extension', [
    (44100, 1, 'PCM_24', 'wav'), (48000, 2, 'PCM_16', 'wav'), (22050, 1, 'PCM_32', 'wav'),
    (8000, 2, 'FLOAT', 'wav'), (16000, 1, 'PCM_16', 'flac')])
def test_load_audio_reads_encodings_and_resamples(tmp_path, sample_rate, channels, subtype,
                                                  extension):
  path = str(tmp_path / f'tone.{extension}')
  fixtures.write_tone(path, 440.0, sample_rate, channels, subtype)
  waveform = features.load_audio(path, sample_rate=8000, duration_s=1.0)
  assert waveform.dtype == np.float32 and waveform.shape == (8000,)
  # A 0.5-amplitude sine has RMS 0.5 / sqrt(2) whatever the encoding, channels or rate.
  assert np.sqrt(np.mean(waveform[1000:7000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_load_audio_downmixes_stereo_by_mean(tmp_path):
  path = str(tmp_path / 'stereo.wav')
  left = np.linspace(-0.5, 0.5, 8000)
  soundfile.write(path, np.stack([left, np.zeros_like(left)], axis=1), 8000, subtype='FLOAT')
  np.testing.assert_allclose(features.load_audio(path, 8000, 1.0), left / 2, atol=1e-7)


def test_load_audio_pads_and_crops(tmp_path):
  short, long = str(tmp_path / 'short.wav'), str(tmp_path / 'long.wav')
  soundfile.write(short, np.full(4000, 0.25), 8000, subtype='FLOAT')
  soundfile.write(long, np.concatenate([np.full(8000, 0.25), np.full(8000, -0.25)]), 8000,
                  subtype='FLOAT')
  padded = features.load_audio(short, 8000, 1.0)
  np.testing.assert_array_equal(padded[:4000], 0.25)
  np.testing.assert_array_equal(padded[4000:], 0.0)
  np.testing.assert_array_equal(features.load_audio(long, 8000, 1.0), 0.25)


def write_empty(path):
  soundfile.write(path, np.zeros((0, 1)), 8000, subtype='PCM_16')


def write_nan(path):
  soundfile.write(path, np.full(800, np.nan), 8000, subtype='FLOAT')


def write_corrupt(path):
  with open(path, 'wb') as file:
    file.write(b'RIFF\x10\x00\x00\x00WAVEnot really audio at all')


@pytest.mark.parametrize('write,reason', [(write_empty, 'no samples'), (write_nan, 'NaN'),
                                          (write_corrupt, 'cannot be read')])
def test_bad_audio_raises_naming_the_file(tmp_path, write, reason):
  path = str(tmp_path / 'bad.wav')
  write(path)
  with pytest.raises(features.AudioError, match=reason) as error:
    features.load_audio(path, 8000, 1.0)
  assert path in str(error.value)


def test_missing_file_raises_audio_error(tmp_path):
  path = str(tmp_path / 'absent.wav')
  with pytest.raises(features.AudioError, match='absent.wav'):
    features.extract_logmel(path, fixtures.tiny_features())


def test_reference_front_end_gives_256_by_431():
  config = defaults.reference_features()
  assert features.num_frames(config) == 431
  waveform = np.random.default_rng(0).standard_normal(441000).astype(np.float32)
  logmel = features.logmel(waveform, config)
  assert logmel.shape == (256, 431) and logmel.dtype == np.float32
  assert np.all(np.isfinite(logmel))


@pytest.mark.parametrize('frequency', [300.0, 1000.0, 2500.0])
def test_logmel_of_sine_peaks_in_its_mel_bin(frequency):
  config = fixtures.tiny_features()
  time = np.arange(8000) / 8000
  logmel = features.logmel(np.sin(2 * np.pi * frequency * time).astype(np.float32), config)
  assert logmel.shape == (32, 63)
  assert fixtures.peak_mel_bin(logmel) == fixtures.tone_mel_bin(frequency)


def test_logmel_matches_its_definition():
  config = fixtures.tiny_features()
  waveform = np.random.default_rng(1).standard_normal(8000).astype(np.float32)
  power = np.abs(librosa.stft(y=waveform, n_fft=256, hop_length=128, window='hann',
                              center=True, pad_mode='constant')) ** 2
  filterbank = librosa.filters.mel(sr=8000, n_fft=256, n_mels=32, fmin=0.0, fmax=4000.0)
  np.testing.assert_allclose(features.logmel(waveform, config), np.log(filterbank @ power + 1e-6),
                             rtol=1e-4, atol=1e-4)
  silent = features.logmel(np.zeros(8000, np.float32), config)
  np.testing.assert_allclose(silent, np.log(1e-6), rtol=1e-6)


def test_feature_params_resolve_defaults_for_dicts_and_config_dicts():
  config = fixtures.tiny_features()
  params = features.feature_params(config)
  assert params['win_length'] == 256 and params['fmax'] == 4000.0
  assert features.feature_params(dict(config)) == params
  assert features.feature_params(params) == params
  assert features.num_frames(params) == 63
  assert features.feature_hash(params) == features.feature_hash(dict(reversed(params.items())))
  assert features.feature_hash(params) != features.feature_hash({**params, 'n_mels': 64})
  with pytest.raises(KeyError, match='hop_length'):
    features.feature_params({key: value for key, value in params.items() if key != 'hop_length'})


def test_extract_logmel_equals_load_then_logmel(tmp_path):
  path = str(tmp_path / 'tone.wav')
  fixtures.write_tone(path, 1000.0, 48000, 2, 'PCM_24')
  config = fixtures.tiny_features()
  np.testing.assert_array_equal(features.extract_logmel(path, config),
                                features.logmel(features.load_audio(path, 8000, 1.0), config))


def test_feature_and_dataset_modules_never_import_jax():
  # Extraction workers are spawned processes that import these modules: they must stay light.
  code = ('import sys; import asc_jax.features, asc_jax.data.datasets; '
          'sys.exit(int("jax" in sys.modules or "tensorflow" in sys.modules))')
  assert subprocess.run([sys.executable, '-c', code], timeout=120).returncode == 0
