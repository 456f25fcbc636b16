"""Periodic actions of the training loop (asc_jax.loop): each is called after every step and acts
when it is due: every `every_steps` steps, at the last step, and when the run stops early.

  ReportProgress      one progress bar (step, loss, accuracy, clips/s, ETA) and the train/*
                      scalars (TensorBoard + metrics.jsonl) every log interval
  CheckNonFinite      stops the run naming the step (and the member of a sweep) whose loss or
                      gradient was NaN or inf; the last good checkpoint stays in place
  EvaluateValidation  scores the validation split, writes validation/* scalars
  EarlyStopping       ends training when validation accuracy has not improved for `patience`
                      scores
  Checkpointing       saves state and data iterator: periodically, after each validation score
                      (ranked by it for the best checkpoint), at the end and on a stop signal
"""

import time
from typing import Callable, Optional, Sequence

import jax
import numpy as np
import optax

from asc_jax import checkpointing
from asc_jax import console
from asc_jax import loop
from asc_jax import metric_writer


class NonFiniteLossError(FloatingPointError):
  pass


def is_due(context: loop.StepContext, every_steps: int) -> bool:
  return (every_steps > 0 and context.step % every_steps == 0) or context.is_last or \
      context.stopping


class ReportProgress:
  """The run's progress bar and its train/<metric> scalars (means over the log interval and, for
  a stacked run, over its members). `losses` keeps every step's loss (per member) for callers."""

  def __init__(self, writer: metric_writer.MetricWriter, *, total_steps: int, start_step: int,
               clips_per_step: int, every_steps: int, schedule: Optional[optax.Schedule] = None,
               description: str = 'train', enabled: bool = True):
    self.writer, self.every_steps, self.schedule = writer, every_steps, schedule
    self.clips_per_step = clips_per_step
    self.losses: list[np.ndarray] = []
    self._pending: list[dict] = []
    self._bar = console.progress(total=total_steps, initial=start_step, desc=description,
                                 unit='step', disable=not enabled)
    self._tick, self._tick_step = time.perf_counter(), start_step

  def __call__(self, context: loop.StepContext) -> None:
    self._pending.append(context.metrics)
    if not is_due(context, self.every_steps):
      return
    values = jax.device_get(self._pending)
    # Steps are dispatched ahead of the device; the bar counts them once their metrics are back,
    # so its rate and ETA are those of finished steps.
    self._bar.update(len(values))
    self.losses.extend(np.asarray(row['loss']) for row in values)
    clips_per_s = ((context.step - self._tick_step) * self.clips_per_step /
                   max(time.perf_counter() - self._tick, 1e-9))
    scalars = {f'train/{name}': float(np.mean([row[name] for row in values])) for name in values[0]}
    if self.schedule is not None:
      scalars['train/learning_rate'] = float(self.schedule(context.step - 1))
    scalars['train/clips_per_s'] = clips_per_s
    self.writer.write_scalars(context.step, scalars)
    self._bar.set_postfix({name.split('/')[1]: f'{value:.3f}' for name, value in scalars.items()
                           if name.split('/')[1] in ('loss', 'accuracy')} |
                          {'clips/s': f'{clips_per_s:.0f}'})
    self._pending, self._tick, self._tick_step = [], time.perf_counter(), context.step
    if context.is_last or context.stopping:
      self._bar.close()


class CheckNonFinite:
  """Raises NonFiniteLossError at the first due step after a non-finite loss or gradient."""

  def __init__(self, every_steps: int, where: str, member_names: Sequence[str] = ()):
    self.every_steps, self.where, self.member_names = every_steps, where, tuple(member_names)

  def __call__(self, context: loop.StepContext) -> None:
    if not is_due(context, self.every_steps):
      return
    bad = np.atleast_1d(np.asarray(jax.device_get(context.state.nonfinite_step)))
    if np.all(bad < 0):
      return
    member = int(np.argmax(bad >= 0))
    who = f'{self.member_names[member]}: ' if self.member_names else ''
    raise NonFiniteLossError(
        f'{who}the loss or its gradient became NaN or inf at step {int(bad[member])}; training '
        f'stopped and the last good checkpoint in {self.where} is kept. Lower '
        'config.train.learning_rate or set config.train.grad_clip_norm.')


class EvaluateValidation:
  """Scores the validation split with `evaluate(state) -> metrics` (asc_jax.evaluate)."""

  def __init__(self, evaluate: Callable, writer: metric_writer.MetricWriter, every_steps: int,
               extra_scalars: Optional[Callable] = None):
    self.evaluate, self.writer, self.every_steps = evaluate, writer, every_steps
    self.extra_scalars = extra_scalars

  def __call__(self, context: loop.StepContext) -> None:
    if not is_due(context, self.every_steps) or (context.stopping and not context.is_last):
      return
    metrics = self.evaluate(context.state)
    scalars = {'validation/accuracy': metrics['accuracy'],
               'validation/log_loss': metrics['log_loss']}
    if self.extra_scalars is not None:
      scalars.update(self.extra_scalars(context.state))
    self.writer.write_scalars(context.step, scalars)
    context.shared['validation'] = metrics


class EarlyStopping:
  """Finishes training once `patience` validation scores in a row brought no new best accuracy.

  `previous` are the validation accuracies of the run so far (a resumed run's history)."""

  def __init__(self, patience: int, previous: Sequence[float] = ()):
    self.patience, self.best, self.since_best = patience, float('-inf'), 0
    for accuracy in previous:
      self._update(accuracy)

  def _update(self, accuracy: float) -> None:
    if accuracy > self.best:
      self.best, self.since_best = accuracy, 0
    else:
      self.since_best += 1

  def __call__(self, context: loop.StepContext) -> None:
    if 'validation' not in context.shared or context.is_last:
      return
    self._update(context.shared['validation']['accuracy'])
    if self.since_best >= self.patience:
      print(f'early stopping at step {context.step}: validation accuracy has not improved on '
            f'{100 * self.best:.2f} % for {self.since_best} scores.')
      context.finish = True


class Checkpointing:
  """Saves the state and the data iterator; a save right after a validation score carries it,
  which ranks the checkpoint for the 'best' one (asc_jax.checkpointing)."""

  def __init__(self, manager, data_iterator, every_steps: int):
    self.manager, self.data_iterator, self.every_steps = manager, data_iterator, every_steps

  def __call__(self, context: loop.StepContext) -> None:
    validation = context.shared.get('validation')
    if validation is None and not is_due(context, self.every_steps):
      return
    metrics = ({checkpointing.BEST_METRIC: float(validation['accuracy'])}
               if validation is not None else None)
    checkpointing.save(self.manager, context.step, context.state, self.data_iterator, metrics)
