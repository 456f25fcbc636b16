"""Tests of asc_jax.data.synthetic_audio: clip lists, determinism and the device chains."""

import collections
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from asc_jax.data import synthetic_audio as sa


@pytest.mark.parametrize('preset_name', sorted(sa.PRESETS))
def test_clip_lists_follow_tau_fold1(preset_name):
  preset = sa.PRESETS[preset_name]
  train, test = sa.clip_specs(preset_name, 'train'), sa.clip_specs(preset_name, 'test')
  train_devices = collections.Counter(spec.device for spec in train)
  assert train_devices == {'a': preset.train_clips_device_a,
                           **{d: preset.train_clips_per_seen_device for d in sa.SEEN_DEVICES}}
  assert collections.Counter(spec.device for spec in test) == {
      d: preset.test_clips_per_device for d in sa.DEVICES}
  scenes_a = collections.Counter(spec.scene for spec in train if spec.device == 'a')
  assert set(scenes_a) == set(sa.SCENES) and max(scenes_a.values()) - min(scenes_a.values()) <= 1
  assert len({spec.filename for spec in train + test}) == len(train) + len(test)
  assert not {s.identifier for s in train} & {s.identifier for s in test}
  # Parallel recordings: every non-a training segment exists on device a; every test segment
  # exists on all nine devices.
  a_segments = {spec.segment_id for spec in train if spec.device == 'a'}
  assert {spec.segment_id for spec in train} == a_segments
  test_devices = collections.defaultdict(set)
  for spec in test:
    test_devices[spec.segment_id].add(spec.device)
  assert all(devices == set(sa.DEVICES) for devices in test_devices.values())


def test_clip_spec_names_follow_tau():
  spec = sa.ClipSpec(scene='metro_station', city='lyon', location=1304, segment=1304001,
                     device='s2')
  assert spec.identifier == 'lyon-1304'
  assert spec.segment_id == 'metro_station-lyon-1304-1304001'
  assert spec.filename == 'audio/metro_station-lyon-1304-1304001-s2.wav'
  assert sa.clip_specs('tiny', 'train') == sa.clip_specs('tiny', 'train')


def test_unknown_names_raise_with_the_choices():
  with pytest.raises(ValueError, match='tiny'):
    sa.clip_specs('huge', 'train')
  with pytest.raises(ValueError, match="'dev'"):
    sa.clip_specs('tiny', 'dev')


def test_render_is_deterministic_float32_and_not_silent():
  spec = sa.clip_specs('tiny', 'test')[0]
  first, again = sa.render_clip(spec, 'tiny'), sa.render_clip(spec, 'tiny')
  preset = sa.PRESETS['tiny']
  assert first.dtype == np.float32
  assert first.shape == (int(preset.sample_rate * preset.duration_s),)
  np.testing.assert_array_equal(first, again)
  assert np.all(np.isfinite(first)) and 0.005 < np.sqrt(np.mean(first ** 2)) < 0.5
  assert np.abs(first).max() < 1.0


DIGEST_CODE = ('import hashlib\n'
               'from asc_jax.data import synthetic_audio\n'
               'digest = hashlib.sha256()\n'
               'for spec in synthetic_audio.clip_specs("tiny", "train")[:3]:\n'
               '  digest.update(synthetic_audio.render_clip(spec, "tiny").tobytes())\n'
               'print(digest.hexdigest())\n')


def test_render_does_not_depend_on_python_hash_seed():
  outputs = []
  for hash_seed in ('1', '2'):
    result = subprocess.run([sys.executable, '-c', DIGEST_CODE],
                            env=dict(os.environ, PYTHONHASHSEED=hash_seed), capture_output=True,
                            text=True, check=True)
    outputs.append(result.stdout.strip())
  digest = hashlib.sha256()
  for spec in sa.clip_specs('tiny', 'train')[:3]:
    digest.update(sa.render_clip(spec, 'tiny').tobytes())
  assert outputs == [digest.hexdigest()] * 2


def log_spectrum(waveform: np.ndarray) -> np.ndarray:
  return 10 * np.log10(np.abs(np.fft.rfft(waveform)) ** 2 + 1e-12)


def smoothed(values: np.ndarray, width: int = 101) -> np.ndarray:
  return np.convolve(values, np.ones(width) / width, mode='valid')


def test_parallel_recordings_share_the_clip_and_differ_by_the_device_response():
  by_segment = collections.defaultdict(dict)
  for spec in sa.clip_specs('small', 'test'):
    by_segment[spec.segment_id][spec.device] = spec
  segments = list(by_segment.values())[:3]
  preset = sa.PRESETS['small']
  freqs = np.fft.rfftfreq(int(preset.sample_rate * preset.duration_s), 1 / preset.sample_rate)
  band = (freqs > 150) & (freqs < 5000)
  responses = {device: smoothed(sa.device_response_db(device, preset, freqs[band]))
               for device in sa.DEVICES}
  for segment in segments:
    reference = log_spectrum(sa.render_clip(segment['a'], 'small'))[band]
    for device in ('b', 's1'):   # mild distortion: the spectrum ratio is the device response.
      recorded = log_spectrum(sa.render_clip(segment[device], 'small'))[band]
      measured = smoothed(recorded - reference)
      errors = {other: np.median(np.abs(measured - response))
                for other, response in responses.items()}
      assert errors[device] < 1.0
      assert min(errors, key=errors.get) == device
  first, second = (sa.render_clip(segment['a'], 'small') for segment in segments[:2])
  assert abs(np.corrcoef(first, second)[0, 1]) < 0.1


def test_reference_device_is_flat_and_others_are_not():
  preset = sa.PRESETS['small']
  freqs = np.linspace(100, 7000, 200)
  flat = sa.device_response_db('a', preset, freqs)
  assert np.ptp(flat) < 2.0
  for device in sa.DEVICES[1:]:
    assert np.ptp(sa.device_response_db(device, preset, freqs)) > 6.0


def test_scenes_differ_within_one_device():
  specs = [spec for spec in sa.clip_specs('tiny', 'test') if spec.device == 'a']
  spectra = np.stack([smoothed(log_spectrum(sa.render_clip(spec, 'tiny')), 41) for spec in specs])
  spectra -= spectra.mean(axis=1, keepdims=True)
  distances = np.abs(spectra[:, None] - spectra[None]).mean(axis=-1)
  assert len(specs) == len(sa.SCENES)
  assert distances[~np.eye(len(specs), dtype=bool)].min() > 0.5
