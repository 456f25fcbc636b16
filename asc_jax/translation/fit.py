"""Trains a device translator on parallel pairs and reports it against the identity baseline.

The translate command's work (python -m asc_jax.translate), trained by the one builder and loop
(asc_jax.builder.compile_task, asc_jax.loop). `train_translator(config, workdir)` scans the training split for pairs (source device -> every
other device with the same segment_id), holds out a fraction of the segments, fits
asc_jax.models.translator.DeviceTranslator with an L1 or L2 loss on log-mels, and reports for
every target device the error on held-out pairs of the translation and of the identity (the
source-device log-mel used unchanged). The translator, its config and the report go into the
workdir (asc_jax.translation.store). `own_translator(config, workdir)` does the same for a
classifier run that asks for device translation without naming a trained translator: it trains
one on the run's own train split into WORKDIR/translator.
"""

import json
import os
from typing import Any, Callable, Optional, Sequence

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from asc_jax import builder
from asc_jax import defaults
from asc_jax import fileio
from asc_jax import hooks
from asc_jax import loop
from asc_jax import metric_writer
from asc_jax import parallel
from asc_jax import steps
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


def translator_objective(model: translator_lib.DeviceTranslator, loss: str) -> Callable:
  """The objective (asc_jax.steps) of one pair batch: L1 or L2 error of the translation."""
  if loss not in LOSSES:
    raise ValueError(f'config.translator.loss={loss!r} is unknown; choose one of {LOSSES}.')
  error = 'l1' if loss == 'l1' else 'mse'

  def objective(params, batch_stats, batch, key):
    del key
    prediction = model.apply({'params': params}, batch['source'], batch['device'])
    return per_example_errors(prediction, batch['target'])[error].mean(), ({}, batch_stats)

  return objective


def pair_errors(model: translator_lib.DeviceTranslator) -> Callable:
  """eval step (state, batch) -> per-example errors of the translator and of the identity."""

  def error_step(state, batch):
    prediction = model.apply({'params': state.params}, batch['source'], batch['device'])
    translated = per_example_errors(prediction, batch['target'])
    identity = per_example_errors(batch['source'], batch['target'])
    return ({f'translator_{name}': value for name, value in translated.items()} |
            {f'identity_{name}': value for name, value in identity.items()})

  return error_step


def translator_run(model: translator_lib.DeviceTranslator, settings: ml_collections.ConfigDict,
                   input_shape: tuple[int, int], devices: Optional[Sequence[jax.Device]] = None
                   ) -> builder.Run:
  """The translator's run: Adam with a cosine-decayed rate over settings.num_steps."""
  schedule = optax.cosine_decay_schedule(settings.learning_rate, settings.num_steps)
  tx = optax.adam(schedule)
  task = builder.Task(model=model, tx=tx, schedule=schedule,
                      example_inputs=(jnp.zeros((1, *input_shape)), jnp.zeros((1,), jnp.int32)),
                      init_kwargs={}, objective=translator_objective(model, settings.loss),
                      evaluate=pair_errors(model), batch_size=settings.batch_size,
                      steps_per_epoch=settings.num_steps, total_steps=settings.num_steps)
  return builder.compile_task(task, parallel.make_mesh(devices))


def summarize(errors: dict[str, np.ndarray], devices: np.ndarray) -> dict[str, Any]:
  """Mean errors per target device name and over all pairs, from per-example arrays."""
  def means(selected: np.ndarray) -> dict[str, float]:
    return {'pairs': int(selected.sum())} | {name: float(values[selected].mean())
                                             for name, values in errors.items()}

  return {'devices': {name: means(devices == name) for name in sorted(set(devices))},
          'all': means(np.ones(len(devices), bool))}


def evaluate_pairs(run: builder.Run, params: Any, reader: pairs_lib.PairBatchReader,
                   held_out: Sequence[pairs_lib.Pair], batch_size: int) -> dict[str, Any]:
  """Per-device translator and identity errors over every held-out pair (padding masked)."""
  state = run.place_state(steps.variables_state({'params': params}))
  num_batches = -(-len(held_out) // batch_size)
  positions = np.full(num_batches * batch_size, -1, np.int64)
  positions[:len(held_out)] = np.arange(len(held_out))
  collected: dict[str, list] = {}
  for batch_positions in tqdm.tqdm(positions.reshape(num_batches, batch_size), desc='evaluate',
                                   unit='batch', leave=False):
    batch = reader(batch_positions)
    mask = batch.pop('mask')
    for name, values in jax.device_get(run.eval_step(state, run.eval_batch(batch))).items():
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
  """Endless shuffled batches of training pairs (a new order every epoch), without 'mask'."""
  dataset = (grain.MapDataset.range(num_pairs).shuffle(seed=seed).repeat(None)
             .batch(batch_size, drop_remainder=True).map(reader)
             .map(lambda batch: {name: value for name, value in batch.items() if name != 'mask'}))
  return iter(dataset.to_iter_dataset(READ_OPTIONS))


def fit_params(run: builder.Run, reader: pairs_lib.PairBatchReader, num_pairs: int, seed: int,
               log_every_steps: int) -> Any:
  """The translator's parameters after run.total_steps steps of the one loop."""
  progress = hooks.ReportProgress(metric_writer.MetricWriter('', enabled=False),
                                  total_steps=run.total_steps, start_step=0,
                                  clips_per_step=run.task.batch_size,
                                  every_steps=log_every_steps,
                                  description='train translator')
  result = loop.train_loop(run, run.init(jax.random.key(seed)),
                           train_iterator(reader, num_pairs, run.task.batch_size, seed),
                           run.base_key(seed),
                           [progress, hooks.CheckNonFinite(run.total_steps, 'no checkpoint')])
  if not result.completed:
    raise KeyboardInterrupt(f'translator training stopped at step {result.step} '
                            f'({result.signal_name}); nothing was written.')
  return jax.tree.map(np.asarray, jax.device_get(result.state.params))


def train_translator(config: ml_collections.ConfigDict, workdir: str,
                     dataset: Optional[datasets.PreparedDataset] = None) -> dict[str, Any]:
  """Trains the translator config.translator describes on config.data (`dataset`, when the
  caller has already prepared it); returns the report."""
  settings = config.translator
  dataset = dataset if dataset is not None else datasets.prepare(config)
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
  run = translator_run(model, settings, dataset.input_shape)
  params = fit_params(run, pairs_lib.PairBatchReader(source, train_pairs, dataset.device_names),
                      len(train_pairs), config.seed, settings.log_every_steps)
  report = evaluate_pairs(run, params,
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


OWN_TRANSLATOR_DIR = 'translator'
# What decides a classifier run's own translator; a resumed run reuses the stored one only if
# these keys match (paths such as data.manual_dir may move between the two).
OWN_TRANSLATOR_KEYS = ('seed', 'data.name', 'data.builder_config', 'data.train_folds',
                       'data.validation_folds', 'data.validation_fraction', 'data.validation_seed',
                       'data.cross_fit', 'data.cross_fit_seed', 'features', 'translator')


def classifier_translator_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The translate command's config for the translator of classifier run `config`: the run's data
  (with its cross-fit fold, so the held-out third's pairs stay unseen) and front end,
  config.translator's settings, seed config.augment.translator_seed."""
  # configs saved before classifier configs carried a translator section lack it.
  translator = config.translator if 'translator' in config else defaults.translator_section()
  return ml_collections.ConfigDict(dict(
      seed=config.augment.get('translator_seed', 0), data=config.data, features=config.features,
      translator=translator))


def deciding_values(config: dict) -> dict:
  """The OWN_TRANSLATOR_KEYS values of a translator config given as a plain dict."""
  def value(key):
    node = config
    for part in key.split('.'):
      node = node.get(part) if isinstance(node, dict) else None
    return node
  return {key: value(key) for key in OWN_TRANSLATOR_KEYS}


def check_reusable(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Raises ValueError when the translator stored in `workdir` was trained with other settings."""
  with open(os.path.join(workdir, store.CONFIG_FILE), encoding='utf-8') as file:
    stored = deciding_values(json.load(file))
  wanted = deciding_values(json.loads(config.to_json_best_effort()))
  changed = sorted(key for key in wanted if stored[key] != wanted[key])
  if changed:
    raise ValueError(f'{workdir} holds a translator trained with other {", ".join(changed)}: '
                     'remove that directory to train a new one, or use a new --workdir.')


def own_translator(config: ml_collections.ConfigDict, workdir: str,
                   dataset: Optional[datasets.PreparedDataset] = None) -> ml_collections.ConfigDict:
  """`config` with augment.translation_workdir set to WORKDIR/translator, where a translator is
  trained first on the run's own train split unless a resumed run left one there. Unchanged when
  translation is off (augment.translation_p 0) or a translator's workdir is already given.
  `dataset`: the run's prepared dataset, so that training the translator does not read it again."""
  augment = config.augment
  if augment.get('translation_p', 0.0) <= 0 or augment.translation_workdir:
    return config
  translator_dir = os.path.join(workdir, OWN_TRANSLATOR_DIR)
  translator_config = classifier_translator_config(config)
  if os.path.exists(os.path.join(translator_dir, store.TRANSLATOR_FILE)):
    check_reusable(translator_dir, translator_config)
    print(f'device translation: reusing the translator in {translator_dir}')
  else:
    print(f'device translation: training a translator on the train split into {translator_dir} '
          '(config.translator; give a trained one with --config.augment.translation_workdir)')
    train_translator(translator_config, translator_dir, dataset)
  config = config.copy_and_resolve_references()
  config.augment.translation_workdir = translator_dir
  return config
