"""Trains a device translator on parallel pairs and reports it against the identity baseline.

`train_translator(config, workdir)` scans the training split for pairs (source device -> every
other device with the same segment_id), holds out a fraction of the segments, fits
asc_jax.models.translator.DeviceTranslator with an L1 or L2 loss on log-mels, and reports for
every target device the error on held-out pairs of the translation and of the identity (the
source-device log-mel used unchanged). The translator, its config and the report go into the
workdir (asc_jax.translation.store).
"""

import os
import time
from typing import Any, Callable, Sequence

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from asc_jax import fileio
from asc_jax.data import datasets
from asc_jax.models import translator as translator_lib
from asc_jax.translation import pairs as pairs_lib
from asc_jax.translation import store

LOSSES = ('l1', 'l2')
READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)


def per_example_errors(prediction: jax.Array, target: jax.Array) -> dict[str, jax.Array]:
  """Mean absolute ('l1') and mean squared ('mse') error per example of [B, F, T] log-mels."""
  difference = prediction.astype(jnp.float32) - target.astype(jnp.float32)
  return {'l1': jnp.abs(difference).mean(axis=(1, 2)),
          'mse': jnp.square(difference).mean(axis=(1, 2))}


def make_train_step(model: translator_lib.DeviceTranslator, tx: optax.GradientTransformation,
                    loss: str) -> Callable:
  """Jitted (params, opt_state, batch) -> (params, opt_state, loss) on one pair batch."""
  if loss not in LOSSES:
    raise ValueError(f'config.translator.loss={loss!r} is unknown; choose one of {LOSSES}.')
  error = 'l1' if loss == 'l1' else 'mse'

  def train_step(params, opt_state, batch):
    def objective(params):
      prediction = model.apply({'params': params}, batch['source'], batch['device'])
      return per_example_errors(prediction, batch['target'])[error].mean()

    value, grads = jax.value_and_grad(objective)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  return jax.jit(train_step, donate_argnums=(0, 1))


def make_error_step(model: translator_lib.DeviceTranslator) -> Callable:
  """Jitted (params, batch) -> per-example errors of the translator and of the identity."""

  def error_step(params, batch):
    prediction = model.apply({'params': params}, batch['source'], batch['device'])
    translated = per_example_errors(prediction, batch['target'])
    identity = per_example_errors(batch['source'], batch['target'])
    return ({f'translator_{name}': value for name, value in translated.items()} |
            {f'identity_{name}': value for name, value in identity.items()})

  return jax.jit(error_step)


def summarize(errors: dict[str, np.ndarray], devices: np.ndarray) -> dict[str, Any]:
  """Mean errors per target device name and over all pairs, from per-example arrays."""
  def means(selected: np.ndarray) -> dict[str, float]:
    return {'pairs': int(selected.sum())} | {name: float(values[selected].mean())
                                             for name, values in errors.items()}

  return {'devices': {name: means(devices == name) for name in sorted(set(devices))},
          'all': means(np.ones(len(devices), bool))}


def evaluate_pairs(error_step: Callable, params: Any, reader: pairs_lib.PairBatchReader,
                   held_out: Sequence[pairs_lib.Pair], batch_size: int) -> dict[str, Any]:
  """Per-device translator and identity errors over every held-out pair (padding masked)."""
  num_batches = -(-len(held_out) // batch_size)
  positions = np.full(num_batches * batch_size, -1, np.int64)
  positions[:len(held_out)] = np.arange(len(held_out))
  collected: dict[str, list] = {}
  for batch_positions in tqdm.tqdm(positions.reshape(num_batches, batch_size), desc='evaluate',
                                   unit='batch'):
    batch = reader(batch_positions)
    mask = batch.pop('mask')
    for name, values in jax.device_get(error_step(params, batch)).items():
      collected.setdefault(name, []).append(np.asarray(values)[mask])
  errors = {name: np.concatenate(values) for name, values in collected.items()}
  return summarize(errors, np.array([pair.target for pair in held_out]))


def format_report(report: dict[str, Any]) -> str:
  """The report as a fixed-width table, one row per target device and one for all pairs."""
  header = (f'{"device":<8} {"pairs":>6} {"identity L1":>12} {"translator L1":>14} {"change":>8} '
            f'{"identity MSE":>13} {"translator MSE":>15}')
  rows = [header, '-' * len(header)]
  for name, row in list(report['devices'].items()) + [('all', report['all'])]:
    change = 100.0 * (row['translator_l1'] / row['identity_l1'] - 1.0)
    rows.append(f'{name:<8} {row["pairs"]:>6d} {row["identity_l1"]:>12.4f} '
                f'{row["translator_l1"]:>14.4f} {change:>7.1f}% {row["identity_mse"]:>13.4f} '
                f'{row["translator_mse"]:>15.4f}')
  return '\n'.join(rows)


def train_iterator(reader: pairs_lib.PairBatchReader, num_pairs: int, batch_size: int, seed: int):
  """Endless shuffled batches of training pairs (a new order every epoch)."""
  dataset = (grain.MapDataset.range(num_pairs).shuffle(seed=seed).repeat(None)
             .batch(batch_size, drop_remainder=True).map(reader))
  return iter(dataset.to_iter_dataset(READ_OPTIONS))


def fit_params(model: translator_lib.DeviceTranslator, reader: pairs_lib.PairBatchReader,
               num_pairs: int, settings: ml_collections.ConfigDict, seed: int,
               input_shape: tuple[int, int]) -> Any:
  """Parameters after settings.num_steps Adam steps (cosine-decayed learning rate)."""
  params = model.init(jax.random.key(seed), jnp.zeros((1, *input_shape)),
                      jnp.zeros((1,), jnp.int32))['params']
  tx = optax.adam(optax.cosine_decay_schedule(settings.learning_rate, settings.num_steps))
  opt_state = tx.init(params)
  train_step = make_train_step(model, tx, settings.loss)
  iterator = train_iterator(reader, num_pairs, settings.batch_size, seed)
  losses = []
  progress = tqdm.tqdm(range(settings.num_steps), desc='train translator', unit='step')
  tick = time.perf_counter()
  for step in progress:
    batch = next(iterator)
    batch.pop('mask')
    params, opt_state, loss = train_step(params, opt_state, batch)
    losses.append(loss)
    if (step + 1) % settings.log_every_steps == 0 or step + 1 == settings.num_steps:
      pairs_per_s = len(losses) * settings.batch_size / (time.perf_counter() - tick)
      progress.set_postfix(loss=f'{float(np.mean(jax.device_get(losses))):.4f}',
                           pairs_per_s=f'{pairs_per_s:.0f}')
      losses, tick = [], time.perf_counter()
  return jax.tree.map(np.asarray, jax.device_get(params))


def train_translator(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the translator config.translator describes on config.data; returns the report."""
  settings = config.translator
  dataset = datasets.prepare(config)
  source = dataset.sources['train']
  scan = pairs_lib.scan_source(source, settings.source_device)
  train_pairs, held_out = pairs_lib.split_by_segment(scan.pairs, settings.holdout_fraction,
                                                     config.seed)
  if not train_pairs or not held_out:
    raise ValueError(f'{len(scan.pairs)} parallel pairs are too few to split into training and '
                     'held-out pairs: use a dataset with more parallel recordings.')
  offset, scale = pairs_lib.source_statistics(scan, train_pairs)
  model = translator_lib.DeviceTranslator(
      num_devices=len(dataset.device_names), num_mels=dataset.input_shape[0],
      channels=tuple(settings.channels), embed_dim=settings.embed_dim, offset=offset, scale=scale)
  params = fit_params(model, pairs_lib.PairBatchReader(source, train_pairs, dataset.device_names),
                      len(train_pairs), settings, config.seed, dataset.input_shape)
  report = evaluate_pairs(make_error_step(model), params,
                          pairs_lib.PairBatchReader(source, held_out, dataset.device_names),
                          held_out, settings.eval_batch_size)
  report.update(loss=settings.loss, num_steps=settings.num_steps,
                train_pairs=pairs_lib.pair_counts(train_pairs),
                held_out_pairs=pairs_lib.pair_counts(held_out))
  trained = store.TrainedTranslator(
      model=model, params=params, device_names=tuple(dataset.device_names),
      source_device=settings.source_device,
      target_devices=tuple(pairs_lib.pair_counts(train_pairs)),
      input_shape=tuple(dataset.input_shape), data_name=config.data.name,
      feature_params=dict(dataset.feature_params))
  store.save(workdir, trained, config)
  table = format_report(report)
  fileio.atomic_write_json(os.path.join(workdir, store.REPORT_JSON), report)
  fileio.atomic_write_text(os.path.join(workdir, store.REPORT_TEXT), table + '\n')
  print(table)
  return report
