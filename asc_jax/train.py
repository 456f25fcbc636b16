"""train_and_evaluate(config, workdir): the classifier run, from the dataset to the reports.

The run is assembled by asc_jax.builder and trained by the one loop (asc_jax.loop) with the
standard hooks (asc_jax.hooks): progress and metrics, non-finite checks, validation scores,
early stopping and checkpoints. Model selection (the best checkpoint, early stopping) reads the
validation split only; the test split is scored once, at the end, with the checkpoint that
config.train.test_checkpoint names, and every report says which split and checkpoint it holds.
A restarted run resumes from the newest checkpoint, model and data iterator alike; SIGTERM or
Ctrl-C saves and exits (asc_jax.preemption). Compression (asc_jax.compress.run) and sweeps
(asc_jax.vmap_sweep) train through the same `fit`.
"""

import os
from typing import Any, Callable, Optional, Sequence

import jax
import ml_collections

from asc_jax import builder
from asc_jax import checkpointing
from asc_jax import distributed
from asc_jax import evaluate
from asc_jax import hooks
from asc_jax import inference
from asc_jax import loop
from asc_jax import metric_writer
from asc_jax import reports
from asc_jax import run_files
from asc_jax import scoring
from asc_jax import steps
from asc_jax.augment import translation as augment_translation
from asc_jax.compress import distillation
from asc_jax.compress import teacher
from asc_jax.data import datasets
from asc_jax.data import input_pipeline
from asc_jax.translation import fit as translation_fit

VALIDATION, TEST = 'validation', 'test'


def enable_compilation_cache(cache_dir: str) -> None:
  """Persists XLA compilations across runs (the first compile of a step takes tens of seconds)."""
  if cache_dir:
    jax.config.update('jax_compilation_cache_dir', os.path.expanduser(cache_dir))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


def train_batches(config: ml_collections.ConfigDict, dataset: datasets.PreparedDataset,
                  seed: Optional[int] = None):
  """This process's endless, checkpointable iterator of shuffled training batches."""
  return input_pipeline.train_iterator(
      dataset.sources['train'], global_batch_size=config.train.batch_size,
      seed=config.seed if seed is None else seed, device_names=dataset.device_names,
      process_index=jax.process_index(), process_count=jax.process_count())


def score(run: builder.Run, state: steps.TrainState, dataset: datasets.PreparedDataset,
          split: str, batch_size: int) -> tuple[dict, dict]:
  """(metrics (asc_jax.evaluate), scored arrays) of one run's state on every record of `split`."""
  scored = scoring.score_split(run.eval_step, state, dataset.sources[split], batch_size=batch_size,
                               device_names=dataset.device_names, mesh=run.mesh, name=split)
  metrics = evaluate.compute_metrics(scored['logits'], scored['label'], scored['device'],
                                     dataset.class_names, dataset.device_names,
                                     evaluate.parse_device_groups(dataset.device_groups))
  return metrics, scored


def write_reports(workdir: str, scored_split: tuple[dict, dict],
                  dataset: datasets.PreparedDataset, split: str, step: int, checkpoint: str
                  ) -> dict:
  """Writes the reports of a `score` result (process 0 only); returns its metrics."""
  plain, scored = scored_split
  if jax.process_index() == 0:
    filenames = [dataset.sources[split][int(index)]['filename'] for index in scored['index']]
    reports.write_split_reports(workdir, plain, filenames=filenames,
                                probabilities=evaluate.softmax(scored['logits']),
                                class_names=dataset.class_names, step=step, tag=split,
                                checkpoint=checkpoint)
  return plain


def has_validation(dataset: datasets.PreparedDataset) -> bool:
  return dataset.num_examples.get(VALIDATION, 0) > 0


def standard_hooks(config: ml_collections.ConfigDict, workdir: str, run: builder.Run,
                   dataset: datasets.PreparedDataset, writer: metric_writer.MetricWriter,
                   manager, data_iterator, start_step: int,
                   extra_hooks: Sequence[loop.Hook] = (),
                   validation_scalars: Optional[Callable] = None) -> list[loop.Hook]:
  """Progress, non-finite check, validation (+ early stopping), extra hooks, checkpoints."""
  train = config.train
  primary = jax.process_index() == 0
  progress = hooks.ReportProgress(writer, total_steps=run.total_steps, start_step=start_step,
                                  clips_per_step=train.batch_size,
                                  every_steps=train.log_every_steps, schedule=run.task.schedule,
                                  enabled=primary)
  every = [progress, hooks.CheckNonFinite(train.log_every_steps, checkpointing.checkpoint_dir(workdir))]
  if has_validation(dataset):
    eval_every = max(1, int(train.eval_every_epochs * run.task.steps_per_epoch))
    every.append(hooks.EvaluateValidation(
        lambda state: score(run, state, dataset, VALIDATION, train.eval_batch_size)[0],
        writer, eval_every, validation_scalars))
    patience = train.get('early_stopping_patience', 0)
    if patience > 0:
      previous = [row['validation/accuracy'] for row in metric_writer.read_history(workdir)
                  if 'validation/accuracy' in row and row['step'] <= start_step]
      every.append(hooks.EarlyStopping(patience, previous))
  elif primary:
    print(f'{config.data.name} has no validation split: no validation scores, best checkpoint '
          'or early stopping; the test split is scored once at the end.')
  return every + list(extra_hooks) + [
      hooks.Checkpointing(manager, data_iterator, train.checkpoint_every_steps)]


def fit(config: ml_collections.ConfigDict, workdir: str, dataset: datasets.PreparedDataset,
        run: builder.Run, initial_state: Optional[Callable[[], Any]] = None,
        extra_hooks: Sequence[loop.Hook] = (), validation_scalars: Optional[Callable] = None,
        writer: Optional[metric_writer.MetricWriter] = None) -> loop.LoopResult:
  """Trains `run` in `workdir` with the standard hooks, resuming from its newest checkpoint.

  initial_state: () -> state of a fresh run (default: run.init from config.seed); a warm start
  (compression) passes its own. writer: the run's metric writer when extra hooks share it
  (the caller closes it); by default fit opens and closes its own.
  """
  manager = checkpointing.checkpoint_manager(workdir)
  data_iterator = train_batches(config, dataset)
  state = initial_state() if initial_state is not None else run.init(jax.random.key(config.seed))
  restored = checkpointing.restore_latest(manager, state, data_iterator)
  if restored is not None:
    state = restored
    print(f'resumed from step {int(state.step)} in {manager.directory}')
  own_writer = writer is None
  if own_writer:
    writer = metric_writer.MetricWriter(workdir, enabled=jax.process_index() == 0)
  try:
    run_hooks = standard_hooks(config, workdir, run, dataset, writer, manager, data_iterator,
                               int(state.step), extra_hooks, validation_scalars)
    result = loop.train_loop(run, state, data_iterator, run.base_key(config.seed), run_hooks,
                             stop_every_steps=config.train.get('stop_sync_every_steps', 10))
  finally:
    if own_writer:
      writer.close()
  if not result.completed:
    cause = result.signal_name or 'a stop signal on another process'
    print(f'{cause}: saved step {result.step} in {manager.directory}; run the same command '
          'again to resume.')
  return result


def chosen_checkpoint(config: ml_collections.ConfigDict, dataset: datasets.PreparedDataset) -> str:
  """'best' or 'final': which checkpoint the test split is scored with."""
  which = config.train.get('test_checkpoint', 'best')
  if which not in ('best', 'final'):
    raise ValueError(f'config.train.test_checkpoint={which!r} is unknown: use best or final.')
  return which if has_validation(dataset) else 'final'


def test_state(run: builder.Run, workdir: str, final_state: steps.TrainState, which: str
               ) -> tuple[steps.TrainState, int]:
  """The state to score on test and its step: the final one, or the best checkpoint's."""
  if which == 'final':
    return final_state, int(final_state.step)
  variables = inference.load_variables(workdir, 'best')
  state = run.place_state(steps.variables_state(variables))
  return state, inference.checkpoint_step(workdir, 'best')


def finish(config: ml_collections.ConfigDict, workdir: str, run: builder.Run,
           dataset: datasets.PreparedDataset, final_state: steps.TrainState) -> dict:
  """Scores the test split once with the chosen checkpoint; writes the reports and plots."""
  which = chosen_checkpoint(config, dataset)
  state, step = test_state(run, workdir, final_state, which)
  metrics = write_reports(workdir, score(run, state, dataset, TEST, config.train.eval_batch_size),
                          dataset, TEST, step, which)
  if jax.process_index() == 0:
    reports.plot_training_curves(os.path.join(workdir, 'training_curves.png'),
                                 metric_writer.read_history(workdir))
    print(f'test split, {which} checkpoint (step {step}):')
    print(reports.format_metrics_table(metrics))
  return metrics


def distillation_options(config: ml_collections.ConfigDict, dataset: datasets.PreparedDataset
                         ) -> dict:
  """builder.build options that distill from config.distill.teacher_logits when alpha > 0."""
  distill = config.distill
  if distill.alpha <= 0:
    return {}
  directory = distill.get('teacher_logits', '')
  if not directory:
    raise ValueError(f'config.distill.alpha={distill.alpha} needs config.distill.teacher_logits: '
                     'the directory written by python -m asc_jax.compress.teacher '
                     '--workdir=TEACHER[,TEACHER2...] --out=DIR (teachers trained on this dataset).')
  return distillation.distillation_parts(teacher.load_teacher_targets(directory, config, dataset),
                                         distill)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> Optional[dict]:
  """Trains on config.data's train split (validation for model selection), scores its test split
  once at the end, writes the reports. Returns the test metrics, or None when a stop signal
  ended the run early."""
  if config.prune.target_sparsity > 0:
    raise ValueError(f'config.prune.target_sparsity={config.prune.target_sparsity}: pruning is part '
                     'of compression; train without it, then run python -m asc_jax.compress '
                     '--source_workdir=THIS_RUN (configs/compress.py sets the pruning schedule).')
  dataset = distributed.prepare_dataset(config)
  distill = distillation_options(config, dataset)
  os.makedirs(workdir, exist_ok=True)
  config = translation_fit.own_translator(config, workdir, dataset)
  if jax.process_index() == 0:
    run_files.write_run_files(workdir, config, run_files.dataset_info(dataset))
  translation = augment_translation.load_device_translation(config)
  run = builder.build(config, dataset, device_augmentation=translation, **distill)
  result = fit(config, workdir, dataset, run)
  if not result.completed:
    return None
  return finish(config, workdir, run, dataset, result.state)


def evaluate_workdir(workdir: str, which: str = 'latest') -> dict:
  """Re-scores a trained workdir's checkpoint on its test split and rewrites the test reports."""
  config = run_files.load_config(workdir)
  dataset = distributed.prepare_dataset(config)
  run = builder.build(config, dataset)
  state = run.place_state(steps.variables_state(inference.load_variables(workdir, which)))
  step = inference.checkpoint_step(workdir, which)
  metrics = write_reports(workdir, score(run, state, dataset, TEST, config.train.eval_batch_size),
                          dataset, TEST, step, which)
  if jax.process_index() == 0:
    print(f'test split, {which} checkpoint (step {step}):')
    print(reports.format_metrics_table(metrics))
  return metrics
