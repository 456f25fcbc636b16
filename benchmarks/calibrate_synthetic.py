"""Per-device accuracy of a quick proxy model on a synthetic_scenes preset, with and without
per-frequency instance normalization of the input (how hard the device shift is, and how much
ResNorm-style normalization can recover).

Renders the preset's clips (asc_jax.data.synthetic_audio), takes log-mels with the quickstart
front end (configs/quickstart.py), trains a small CNN on the train split for each input
normalization and prints accuracy per device on the test split. A script, not a test.

  python benchmarks/calibrate_synthetic.py --preset=small --cache=/tmp/small_logmels.npz
"""

import functools
import multiprocessing
import os
import time

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from asc_jax import features
from asc_jax.data import synthetic_audio

_PRESET = flags.DEFINE_enum('preset', 'small', list(synthetic_audio.PRESETS), 'Preset.')
_CACHE = flags.DEFINE_string('cache', '', 'npz file to reuse (or write) the log-mels.')
_EPOCHS = flags.DEFINE_integer('epochs', 15, 'Training epochs per model.')
_SEEDS = flags.DEFINE_integer('seeds', 1, 'Training seeds per model (accuracies averaged).')
_WORKERS = flags.DEFINE_integer('workers', 0, 'Feature processes; 0 = all cores.')

FRONT_ENDS = {
    'tiny': dict(sample_rate=8000, duration_s=1.0, n_fft=256, hop_length=128, n_mels=32),
    'small': dict(sample_rate=16000, duration_s=4.0, n_fft=1024, hop_length=512, n_mels=64),
    'tau_shaped': dict(sample_rate=44100, duration_s=10.0, n_fft=2048, hop_length=1024,
                       n_mels=256),
}
LAMBDA = 0.1


def front_end(preset: str) -> dict:
  return features.feature_params(dict(win_length=None, window='hann', center=True, fmin=0.0,
                                      fmax=None, log_offset=1e-6, **FRONT_ENDS[preset]))


def clip_logmel(spec, preset: str) -> np.ndarray:
  return features.logmel(synthetic_audio.render_clip(spec, preset), front_end(preset))


def split_arrays(preset: str, split: str, workers: int) -> dict:
  specs = synthetic_audio.clip_specs(preset, split)
  context = multiprocessing.get_context('spawn')
  start = time.perf_counter()
  with context.Pool(workers) as pool:
    logmels = list(tqdm.tqdm(pool.imap(functools.partial(clip_logmel, preset=preset), specs,
                                       chunksize=16),
                             total=len(specs), desc=f'{preset}/{split}', unit='clip'))
  seconds = time.perf_counter() - start
  print(f'{split}: {len(specs)} clips rendered + log-mel in {seconds:.1f} s '
        f'({len(specs) / seconds:.1f} clips/s)')
  return dict(x=np.stack(logmels), y=np.array([synthetic_audio.SCENES.index(s.scene)
                                               for s in specs]),
              device=np.array([synthetic_audio.DEVICES.index(s.device) for s in specs]))


def load_arrays(preset: str, cache: str, workers: int) -> dict:
  if cache and os.path.exists(cache):
    with np.load(cache) as data:
      return {key: data[key] for key in data.files}
  arrays = {}
  for split in ('train', 'test'):
    for key, value in split_arrays(preset, split, workers).items():
      arrays[f'{split}_{key}'] = value
  if cache:
    temporary = cache + '.tmp.npz'
    np.savez(temporary, **arrays)
    os.replace(temporary, cache)
  return arrays


def per_frequency_norm(x: jax.Array) -> jax.Array:
  """ResNorm on the input: lam * x + instance norm over time for each example and mel bin."""
  mean = x.mean(axis=2, keepdims=True)
  var = x.var(axis=2, keepdims=True)
  return LAMBDA * x + (x - mean) / jnp.sqrt(var + 1e-5)


class ProxyCNN(nn.Module):
  """Three conv layers (the first strided) and a linear head on [B, F, T] log-mels."""
  normalize: bool

  @nn.compact
  def __call__(self, x):
    x = per_frequency_norm(x) if self.normalize else x
    x = x[..., None]
    x = nn.relu(nn.Conv(16, (5, 5), strides=(2, 2))(x))
    for channels in (32, 48):
      x = nn.max_pool(x, (2, 2), (2, 2))
      x = nn.relu(nn.Conv(channels, (3, 3))(x))
    return nn.Dense(len(synthetic_audio.SCENES))(x.mean(axis=(1, 2)))


def train_and_score(arrays: dict, normalize: bool, seed: int, epochs: int) -> np.ndarray:
  """Test predictions of a ProxyCNN trained on the train split."""
  mean, std = arrays['train_x'].mean(), arrays['train_x'].std()
  train_x = (arrays['train_x'] - mean) / std
  test_x = (arrays['test_x'] - mean) / std
  model = ProxyCNN(normalize)
  batch = min(64, len(train_x))
  steps_per_epoch = len(train_x) // batch
  tx = optax.adam(optax.cosine_decay_schedule(2e-3, epochs * steps_per_epoch))
  params = model.init(jax.random.key(seed), train_x[:1])
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(params):
      return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, x), y).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  rng = np.random.default_rng(seed)
  for _ in tqdm.trange(epochs, desc=f'train normalize={normalize}', unit='epoch', leave=False):
    order = rng.permutation(len(train_x))
    for i in range(steps_per_epoch):
      idx = order[i * batch:(i + 1) * batch]
      params, opt_state = step(params, opt_state, train_x[idx], arrays['train_y'][idx])
  predict = jax.jit(lambda x: model.apply(params, x).argmax(-1))
  return np.concatenate([np.asarray(predict(test_x[i:i + 256]))
                         for i in range(0, len(test_x), 256)])


def main(argv):
  del argv
  arrays = load_arrays(_PRESET.value, _CACHE.value, _WORKERS.value or os.cpu_count() or 1)
  rows = {}
  for normalize in (False, True):
    correct = np.mean([train_and_score(arrays, normalize, seed, _EPOCHS.value)
                       == arrays['test_y'] for seed in range(_SEEDS.value)], axis=0)
    rows[normalize] = [100 * correct[arrays['test_device'] == d].mean()
                       for d in range(len(synthetic_audio.DEVICES))] + [100 * correct.mean()]
  header = ''.join(f'{name:>7}' for name in synthetic_audio.DEVICES + ('all',))
  print(f'\naccuracy % on {_PRESET.value}/test ({_SEEDS.value} seed(s), {_EPOCHS.value} epochs)')
  print(f'{"input":<22}{header}')
  for normalize, values in rows.items():
    label = 'per-frequency norm' if normalize else 'no norm'
    print(f'{label:<22}' + ''.join(f'{value:7.1f}' for value in values))


if __name__ == '__main__':
  app.run(main)
