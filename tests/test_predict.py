"""The predict command on a real workdir (real Orbax checkpoint of a real BC-ResNet-Mod-1) and
real WAV files of other rates, channel counts and encodings than the model was trained on."""

import csv
import functools
import json
import os
import re
import subprocess
import sys

import grain
import jax
import numpy as np
import optax
import pytest
import soundfile

from asc_jax import checkpointing
from asc_jax import inference
from asc_jax import run_files
from asc_jax import features
from asc_jax import models
from asc_jax import predict
from asc_jax import steps

from conftest import load_config_file

CLASSES = ('airport', 'bus', 'metro', 'metro_station', 'park', 'public_square', 'shopping_mall',
           'street_pedestrian', 'street_traffic', 'tram')
REPO = os.path.join(os.path.dirname(__file__), '..')


def random_values(abstract_state):
  """A TrainState of the abstract one's structure filled with random weights (no compile needed):
  fan-in scaled kernels, BatchNorm means near 0 and variances in [0.5, 1.5]."""
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if not np.issubdtype(leaf.dtype, np.floating):
      return np.zeros(leaf.shape, leaf.dtype)
    if 'var' in name:
      return rng.uniform(0.5, 1.5, leaf.shape).astype(leaf.dtype)
    fan_in = max(1, int(np.prod(leaf.shape[:-1])))
    return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, abstract_state)


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """A workdir as training leaves it: config.json, dataset_info.json and an Orbax checkpoint."""
  directory = str(tmp_path_factory.mktemp('workdir'))
  config = load_config_file(os.path.join(REPO, 'configs', 'quickstart.py'), 'tiny')
  input_shape = (config.features.n_mels, features.num_frames(config.features))
  model = models.build_model(config.model)
  init = functools.partial(steps.init_state, model, optax.sgd(0.1),
                           (np.zeros((1, *input_shape), np.float32),), train=False)
  state = random_values(jax.eval_shape(init, jax.random.key(0)))
  info = {'class_names': list(CLASSES), 'device_names': ['a', 'b', 'c'],
          'feature_params': features.feature_params(config.features),
          'input_shape': list(input_shape), 'num_examples': {'train': 0, 'test': 0}}
  run_files.write_run_files(directory, config, info)
  manager = checkpointing.checkpoint_manager(directory)
  checkpointing.save(manager, 7, state, iter(grain.MapDataset.range(4).to_iter_dataset()))
  manager.close()
  return directory


@pytest.fixture(scope='module')
def audio_dir(tmp_path_factory):
  """A 48 kHz stereo float WAV, a 44.1 kHz mono 24-bit WAV (in a sub-folder) and a broken .wav."""
  directory = tmp_path_factory.mktemp('audio')
  rng = np.random.default_rng(0)
  soundfile.write(str(directory / 'stereo_48k.wav'),
                  0.3 * rng.standard_normal((48000 * 2, 2)).astype(np.float32), 48000,
                  subtype='FLOAT')
  (directory / 'nested').mkdir()
  tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(44100 * 1.5)) / 44100)
  soundfile.write(str(directory / 'nested' / 'mono_44k1_24bit.wav'), tone, 44100, subtype='PCM_24')
  (directory / 'nested' / 'notes.txt').write_text('not audio')
  (directory / 'broken.wav').write_bytes(b'RIFF but not really a wave file')
  return directory


def test_collect_audio_files_is_recursive_and_sorted(audio_dir):
  files = predict.collect_audio_files([str(audio_dir)])
  assert [os.path.relpath(path, audio_dir) for path in files] == [
      'broken.wav', os.path.join('nested', 'mono_44k1_24bit.wav'), 'stereo_48k.wav']
  with pytest.raises(FileNotFoundError, match='missing.wav: no such file'):
    predict.collect_audio_files([str(audio_dir / 'missing.wav')])


def window_logits(bundle, path, starts_s):
  """The model applied directly to the windows starting at `starts_s` (seconds)."""
  params = features.feature_params(bundle.config.features)
  rate, window = params['sample_rate'], features.num_samples(params)
  waveform = predict.load_recording(path, rate)
  logmels = np.stack([features.logmel(features.fit_length(
      waveform[int(round(start * rate)):int(round(start * rate)) + window], window), params)
      for start in starts_s])
  apply = jax.jit(bundle.model.apply, static_argnames='train')
  return np.asarray(apply(bundle.variables, logmels, train=False))


def test_predict_files_classifies_any_rate_and_reports_bad_files(workdir, audio_dir):
  bundle = inference.load_for_inference(workdir)
  paths = [str(audio_dir / 'stereo_48k.wav'), str(audio_dir / 'broken.wav'),
           str(audio_dir / 'nested' / 'mono_44k1_24bit.wav')]
  results = predict.predict_files(bundle, paths, batch_size=4)
  assert [result['path'] for result in results] == paths
  assert 'broken.wav' in results[1]['error'] and 'probabilities' not in results[1]
  # 2 s and 1.5 s recordings, 1 s training clips, hop 0.5 s: windows at 0, 0.5, 1 s / 0, 0.5 s.
  for result, starts in ((results[0], [0.0, 0.5, 1.0]), (results[2], [0.0, 0.5])):
    probabilities = np.array(list(result['probabilities'].values()))
    assert list(result['probabilities']) == list(CLASSES)
    assert probabilities.shape == (10,) and np.all(probabilities >= 0)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert result['label'] == CLASSES[int(np.argmax(probabilities))]
    assert result['windows'] == len(starts) and result['framing'] == 'windowed'
    assert 'windows, hop 0.5 s' in result['note']
    # The mean of the window logits of the model applied to each window directly.
    expected = jax.nn.softmax(window_logits(bundle, result['path'], starts).mean(axis=0))
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)
  assert results[0]['probabilities'] != results[2]['probabilities']


def test_window_starts_cover_the_whole_recording():
  assert predict.window_starts(50, 100, 50) == [0]
  assert predict.window_starts(100, 100, 50) == [0]
  assert predict.window_starts(200, 100, 50) == [0, 50, 100]
  assert predict.window_starts(230, 100, 50) == [0, 50, 100, 130]   # last window ends at 230
  assert predict.window_starts(230, 100, 300) == [0, 130]


def test_long_recording_per_window_and_short_recording_padded(workdir, tmp_path):
  bundle = inference.load_for_inference(workdir)
  rng = np.random.default_rng(1)
  long_path, short_path = str(tmp_path / 'long.wav'), str(tmp_path / 'short.wav')
  soundfile.write(long_path, 0.2 * rng.standard_normal(8000 * 30).astype(np.float32), 8000)
  soundfile.write(short_path, 0.2 * rng.standard_normal(3000).astype(np.float32), 16000)
  long_result, short_result = predict.predict_files(bundle, [long_path, short_path],
                                                    hop_s=2.0, per_window=True)
  assert long_result['duration_s'] == pytest.approx(30.0)
  # Every 2 s up to 28 s, then one more window ending at the end: nothing is cropped.
  assert long_result['windows'] == 16 and len(long_result['per_window']) == 16
  assert long_result['per_window'][-1]['start_s'] == pytest.approx(29.0)
  assert long_result['per_window'][-1]['end_s'] == pytest.approx(30.0)
  assert long_result['per_window'][1]['start_s'] == pytest.approx(2.0)
  assert '16 windows, hop 2 s' in long_result['note']
  starts = [*np.arange(0, 29, 2.0), 29.0]
  expected = jax.nn.softmax(window_logits(bundle, long_path, starts).mean(axis=0))
  np.testing.assert_allclose(list(long_result['probabilities'].values()), expected, rtol=1e-4,
                             atol=1e-6)
  assert short_result['framing'] == 'padded' and short_result['windows'] == 1
  assert 'shorter than the 1 s training clip: zero-padded' in short_result['note']
  table = predict.format_table([long_result], 2).splitlines()
  assert len(table) == 2 + 16 and table[2].split()[0] == '0.00-1.00'


def test_dcase_submission_file_is_written_and_reads_back(workdir, audio_dir, tmp_path):
  csv_path = tmp_path / 'submission.csv'
  command = [sys.executable, '-m', 'asc_jax.predict', f'--workdir={workdir}',
             f'--dcase_csv={csv_path}', str(audio_dir / 'nested'),
             str(audio_dir / 'stereo_48k.wav')]
  done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
  assert done.returncode == 0, done.stderr
  assert 'predicted class distribution (2 files)' in done.stderr
  assert 'note:' in done.stderr and 'windows' in done.stderr
  assert not re.search(r'^I\d{4} ', done.stderr, re.MULTILINE)   # no INFO log on the console
  with open(csv_path, newline='') as file:
    rows = list(csv.reader(file, delimiter='\t'))
  assert rows[0] == ['filename', 'scene_label', *predict.DCASE_CLASSES]
  assert [row[0] for row in rows[1:]] == ['nested/mono_44k1_24bit.wav', 'stereo_48k.wav']
  for row in rows[1:]:
    probabilities = np.array(row[2:], float)
    assert len(probabilities) == 10 and probabilities.sum() == pytest.approx(1.0, abs=1e-4)
    assert row[1] == predict.DCASE_CLASSES[int(np.argmax(probabilities))]
  assert not [name for name in os.listdir(tmp_path) if name.startswith('.tmp-')]


def test_command_prints_json_and_fails_for_a_bad_file(workdir, audio_dir):
  command = [sys.executable, '-m', 'asc_jax.predict', f'--workdir={workdir}', '--json',
             '--top_k=2', str(audio_dir)]
  done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
  assert done.returncode == 1
  assert 'broken.wav' in done.stderr and '1 of 3 files' in done.stderr
  assert 'Traceback' not in done.stderr
  entries = json.loads(done.stdout)
  assert [os.path.basename(entry['path']) for entry in entries] == [
      'broken.wav', 'mono_44k1_24bit.wav', 'stereo_48k.wav']
  for entry in entries[1:]:
    assert len(entry['top_k']) == 2 and entry['top_k'][0]['label'] == entry['label']
    assert entry['top_k'][0]['probability'] >= entry['top_k'][1]['probability']


def test_table_output_lists_label_and_top_probabilities():
  results = [{'path': 'x.wav', 'label': 'bus',
              'probabilities': {'airport': 0.2, 'bus': 0.7, 'park': 0.1}},
             {'path': 'bad.wav', 'error': 'bad.wav: cannot be read as audio'}]
  table = predict.format_table(results, 2).splitlines()
  assert table[0].split() == ['file', 'label', 'top', '2']
  assert table[1].split() == ['x.wav', 'bus', 'bus', '70.0%', 'airport', '20.0%']
  assert len(table) == 2
