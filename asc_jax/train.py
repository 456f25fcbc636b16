"""train_and_evaluate(config, workdir): the data-parallel training loop, checkpoints, reports.

State is replicated and the global batch sharded over every device of every process
(asc_jax.parallel); a restarted run resumes from the newest checkpoint, model and data iterator
alike; SIGTERM saves and exits; a non-finite loss stops the run naming the step and leaves the
last good checkpoint in place.
"""

import functools
import os
import time
from typing import Any, Callable, Optional, Sequence

import jax
import ml_collections
import numpy as np
import tqdm

from asc_jax import checkpoints
from asc_jax import distributed
from asc_jax import eval_loop
from asc_jax import metric_writer
from asc_jax import models
from asc_jax import optim
from asc_jax import parallel
from asc_jax import preemption
from asc_jax import reports
from asc_jax import steps
from asc_jax.compress import pruning
from asc_jax.data import datasets
from asc_jax.data import input_pipeline


class NonFiniteLossError(FloatingPointError):
  pass


def dataset_info(dataset: datasets.PreparedDataset) -> dict:
  return {'class_names': list(dataset.class_names), 'device_names': list(dataset.device_names),
          'feature_params': dataset.feature_params, 'input_shape': list(dataset.input_shape),
          'num_examples': dict(dataset.num_examples)}


def check_compatible(config: ml_collections.ConfigDict, dataset: datasets.PreparedDataset,
                     mesh: jax.sharding.Mesh) -> None:
  if config.model.num_classes != len(dataset.class_names):
    raise ValueError(f'config.model.num_classes={config.model.num_classes} but the dataset '
                     f'{config.data.name} has {len(dataset.class_names)} classes: set '
                     f'--config.model.num_classes={len(dataset.class_names)}.')
  parallel.check_batch_size(config.train.batch_size, 'config.train.batch_size', mesh)
  parallel.check_batch_size(config.train.eval_batch_size, 'config.train.eval_batch_size', mesh)


class Trainer:
  """Holds the compiled steps and the mesh for one run; `fit` trains, `evaluate` scores."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str,
               dataset: datasets.PreparedDataset, devices: Optional[Sequence[jax.Device]] = None,
               model: Optional[Any] = None, make_train_step: Callable = steps.make_train_step):
    """`model` (anything with flax's init/apply; default: config.model's network) and
    `make_train_step(model, tx, config)` let compression runs swap in a quantized model and a
    distillation step."""
    self.mesh = parallel.make_mesh(devices)
    check_compatible(config, dataset, self.mesh)
    self.config, self.workdir, self.dataset = config, workdir, dataset
    self.model = model if model is not None else models.build_model(config.model)
    self.steps_per_epoch = dataset.num_examples['train'] // config.train.batch_size
    if self.steps_per_epoch == 0:
      raise ValueError(f'config.train.batch_size={config.train.batch_size} exceeds the '
                       f'{dataset.num_examples["train"]} training examples: lower it.')
    self.total_steps = int(config.train.num_epochs * self.steps_per_epoch)
    self.tx, self.schedule = optim.make_optimizer(
        config.train, self.steps_per_epoch,
        pruning.pruning_from_config(config.prune, self.steps_per_epoch))
    replicated, sharded = parallel.replicated(self.mesh), parallel.batch_sharded(self.mesh)
    init = functools.partial(steps.init_state, self.model, self.tx, dataset.input_shape)
    self._init = jax.jit(init, out_shardings=replicated)
    self._train_step = jax.jit(make_train_step(self.model, self.tx, config),
                               in_shardings=(replicated, sharded, replicated),
                               out_shardings=(replicated, replicated), donate_argnums=(0,))
    self._eval_step = jax.jit(steps.make_eval_step(self.model),
                              in_shardings=(replicated, sharded), out_shardings=sharded)

  def initial_state(self) -> steps.TrainState:
    return self._init(jax.random.key(self.config.seed))

  def train_iterator(self):
    return input_pipeline.train_iterator(
        self.dataset.sources['train'], global_batch_size=self.config.train.batch_size,
        seed=self.config.seed, device_names=self.dataset.device_names,
        process_index=jax.process_index(), process_count=jax.process_count())

  def evaluate(self, state: steps.TrainState, *, step: int, write_files: bool) -> dict:
    scored = eval_loop.score_split(self._eval_step, state, self.dataset.sources['test'],
                                   batch_size=self.config.train.eval_batch_size,
                                   device_names=self.dataset.device_names, mesh=self.mesh)
    return eval_loop.evaluate_and_report(
        scored, self.dataset.sources['test'], class_names=self.dataset.class_names,
        device_names=self.dataset.device_names, workdir=self.workdir, step=step,
        write_files=write_files)

  def fit(self, writer: metric_writer.MetricWriter) -> tuple[steps.TrainState, Optional[dict]]:
    """Trains to the end (or to a stop signal); returns the state and the last test metrics."""
    config, train = self.config, self.config.train
    manager = checkpoints.checkpoint_manager(self.workdir)
    iterator = self.train_iterator()
    state = self.initial_state()
    restored = checkpoints.restore_latest(manager, state, iterator)
    if restored is not None:
      state = restored
      print(f'resumed from step {int(state.step)} in {manager.directory}')
    base_key = jax.jit(functools.partial(jax.random.key, config.seed + 1),  # on every process
                       out_shardings=parallel.replicated(self.mesh))()
    step = int(state.step)
    eval_every = max(1, int(train.eval_every_epochs * self.steps_per_epoch))
    metrics, history, last_eval = [], [], None
    progress = tqdm.tqdm(total=self.total_steps, initial=step, desc='train', unit='step',
                         disable=jax.process_index() != 0)
    tick, tick_step = time.perf_counter(), step
    with preemption.stop_on_signals() as stop:
      while step < self.total_steps:
        batch = parallel.to_global_batch(next(iterator), self.mesh)
        state, step_metrics = self._train_step(state, batch, base_key)
        metrics.append(step_metrics)
        step += 1
        progress.update(1)
        at_log = step % train.log_every_steps == 0 or step == self.total_steps
        at_eval = step % eval_every == 0 or step == self.total_steps
        at_save = step % train.checkpoint_every_steps == 0 or bool(stop)
        if not (at_log or at_eval or at_save):
          continue
        self._raise_if_nonfinite(state)
        if at_log:
          clips_per_s = (step - tick_step) * train.batch_size / (time.perf_counter() - tick)
          scalars = self._summarize(metrics, step, clips_per_s)
          writer.write_scalars(step, scalars)
          progress.set_postfix(loss=f'{scalars["train/loss"]:.3f}',
                               acc=f'{scalars["train/accuracy"]:.3f}',
                               clips_per_s=f'{clips_per_s:.0f}')
          metrics, tick, tick_step = [], time.perf_counter(), step
        if at_eval:
          last_eval = self.evaluate(state, step=step, write_files=False)
          writer.write_scalars(step, {'test/accuracy': last_eval['accuracy'],
                                      'test/log_loss': last_eval['log_loss'],
                                      **self._sparsity_scalars(state)})
          checkpoints.save(manager, step, state, iterator,
                           metrics={'accuracy': last_eval['accuracy']})
        elif at_save:
          checkpoints.save(manager, step, state, iterator)
        if stop:
          print(f'{stop.signal_name} received: saved step {step} in {manager.directory}; '
                'run the same command again to resume.')
          break
    progress.close()
    return state, (last_eval if step >= self.total_steps else None)

  def _summarize(self, metrics: list[dict], step: int, clips_per_s: float) -> dict[str, float]:
    values = jax.device_get(metrics)
    return {'train/loss': float(np.mean([m['loss'] for m in values])),
            'train/accuracy': float(np.mean([m['accuracy'] for m in values])),
            'train/learning_rate': float(self.schedule(step - 1)),
            'train/clips_per_s': clips_per_s}

  def _sparsity_scalars(self, state: steps.TrainState) -> dict[str, float]:
    """Per-kernel and overall sparsity, logged when pruning is on."""
    if self.config.prune.target_sparsity <= 0:
      return {}
    params = jax.device_get(state.params)
    per_layer = pruning.sparsity_report(params)
    return {'sparsity/overall': pruning.overall_sparsity(params),
            **{f'sparsity/{name}': value for name, value in per_layer.items()}}

  def _raise_if_nonfinite(self, state: steps.TrainState) -> None:
    bad_step = int(state.nonfinite_step)
    if bad_step >= 0:
      raise NonFiniteLossError(
          f'the loss or its gradient became NaN or inf at step {bad_step}; training stopped and '
          f'the last good checkpoint in {os.path.join(self.workdir, checkpoints.CHECKPOINT_DIR)} is kept. '
          'Lower config.train.learning_rate or set config.train.grad_clip_norm.')


def enable_compilation_cache(cache_dir: str) -> None:
  """Persists XLA compilations across runs (the first compile of a step takes tens of seconds)."""
  if cache_dir:
    jax.config.update('jax_compilation_cache_dir', os.path.expanduser(cache_dir))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> Optional[dict]:
  """Trains on config.data's train split, evaluates on its test split, writes the reports.

  Returns the final test metrics, or None when a stop signal ended the run early.
  """
  dataset = distributed.prepare_dataset(config)
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    checkpoints.write_run_files(workdir, config, dataset_info(dataset))
  trainer = Trainer(config, workdir, dataset)
  writer = metric_writer.MetricWriter(workdir, enabled=jax.process_index() == 0)
  try:
    state, _ = trainer.fit(writer)
    if int(state.step) < trainer.total_steps:
      return None
    final = trainer.evaluate(state, step=int(state.step), write_files=True)
  finally:
    writer.close()
  if jax.process_index() == 0:
    reports.plot_training_curves(os.path.join(workdir, 'training_curves.png'),
                                 metric_writer.read_history(workdir))
    print(reports.format_metrics_table(final))
  return final


def evaluate_workdir(workdir: str, which: str = 'latest') -> dict:
  """Re-evaluates a trained workdir's checkpoint on its test split and rewrites the reports."""
  config = checkpoints.load_config(workdir)
  dataset = distributed.prepare_dataset(config)
  trainer = Trainer(config, workdir, dataset)
  variables = checkpoints.load_variables(workdir, which)
  state = trainer.initial_state().replace(params=variables['params'],
                                          batch_stats=variables['batch_stats'])
  state = parallel.replicate(state, trainer.mesh)
  metrics = trainer.evaluate(state, step=-1, write_files=True)
  if jax.process_index() == 0:
    print(reports.format_metrics_table(metrics))
  return metrics
