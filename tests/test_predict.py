"""The predict command on a real workdir (real Orbax checkpoint of a real BC-ResNet-Mod-1) and
real WAV files of other rates, channel counts and encodings than the model was trained on."""

import functools
import json
import os
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
  init = functools.partial(steps.init_state, model, optax.sgd(0.1), input_shape)
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


def test_predict_files_classifies_any_rate_and_reports_bad_files(workdir, audio_dir):
  bundle = inference.load_for_inference(workdir)
  paths = [str(audio_dir / 'stereo_48k.wav'), str(audio_dir / 'broken.wav'),
           str(audio_dir / 'nested' / 'mono_44k1_24bit.wav')]
  results = predict.predict_files(bundle, paths, batch_size=4)
  apply_one = jax.jit(bundle.model.apply, static_argnames='train')
  assert [result['path'] for result in results] == paths
  assert 'broken.wav' in results[1]['error'] and 'probabilities' not in results[1]
  for result in (results[0], results[2]):
    probabilities = np.array(list(result['probabilities'].values()))
    assert list(result['probabilities']) == list(CLASSES)
    assert probabilities.shape == (10,) and np.all(probabilities >= 0)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert result['label'] == CLASSES[int(np.argmax(probabilities))]
    # Same answer as the model applied to this one clip directly (padding changes nothing).
    logmel = features.extract_logmel(result['path'], bundle.config.features)
    logits = apply_one(bundle.variables, logmel[None], train=False)
    np.testing.assert_allclose(probabilities, jax.nn.softmax(logits)[0], rtol=1e-4, atol=1e-6)
  assert results[0]['probabilities'] != results[2]['probabilities']


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
