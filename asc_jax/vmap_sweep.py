"""Runs trained together: one compiled program steps M train states stacked on a leading axis.

The runs of a group differ only in their seed and in the optimizer hyperparameters that live in
the optimizer state (asc_jax.optim.VMAPPABLE_KEYS: peak learning rate, weight decay). The builder
(asc_jax.builder, `members=M`) maps the ordinary train step over the run axis of the state, the
batch and the PRNG key, so each run gets exactly what its separate run gets: its own
initialisation, dropout and augmentation keys, data order and hyperparameter values. Other
hyperparameters (model widths, ResNorm lambda, augmentation rates, ...) are constants of the
compiled program and cannot be mapped.

The group trains through the one loop (asc_jax.loop) with progress, non-finite checks and
checkpoints of the stacked state and of every member's data iterator in the group's workdir, so
an interrupted group resumes where it stopped. Each member is scored on the test split once at
the end with its final state (no per-member model selection).
"""

import dataclasses
import functools
import json
from typing import Optional, Sequence

import jax
import ml_collections
import numpy as np

from asc_jax import builder
from asc_jax import checkpointing
from asc_jax import hooks
from asc_jax import loop
from asc_jax import metric_writer
from asc_jax import train
from asc_jax.data import datasets


@dataclasses.dataclass(frozen=True)
class Member:
  """One run of a group: its seed and its values of optim.VMAPPABLE_KEYS (others: the config's)."""
  seed: int
  hyperparameters: tuple[tuple[str, float], ...] = ()


class StackedBatches:
  """The members' training iterators as one iterator of [M, B, ...] batches, checkpointable with
  grain.checkpoint.CheckpointSave (its state: every member's position, as JSON bytes)."""

  def __init__(self, iterators: Sequence):
    self.iterators = list(iterators)

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    parts = [next(iterator) for iterator in self.iterators]
    return {name: np.stack([part[name] for part in parts]) for name in parts[0]}

  def get_state(self) -> bytes:
    return json.dumps([iterator.get_state() for iterator in self.iterators]).encode('utf-8')

  def set_state(self, state: bytes) -> None:
    for iterator, member_state in zip(self.iterators, json.loads(state)):
      iterator.set_state(member_state)

  def start_prefetch(self) -> None:
    for iterator in self.iterators:
      getattr(iterator, 'start_prefetch', lambda: None)()


def _config_value(config: ml_collections.ConfigDict, key: str) -> float:
  return functools.reduce(getattr, key.split('.'), config)


class RunGroup:
  """Trains the `members` of one config in one vmapped program and scores each of them."""

  def __init__(self, config: ml_collections.ConfigDict, dataset: datasets.PreparedDataset,
               members: Sequence[Member], devices: Optional[Sequence[jax.Device]] = None):
    unsupported = [key for key, value in (('distill.alpha', config.distill.alpha),
                                          ('augment.translation_p', config.augment.translation_p))
                   if value > 0]
    if unsupported:
      raise ValueError(f'{", ".join(unsupported)} > 0: distillation and device translation are not '
                       'part of a vmapped run group; sweep these runs without --vmap.')
    self.config, self.dataset, self.members = config, dataset, tuple(members)
    self.seeds = np.asarray([member.seed for member in self.members], np.int32)
    self.run = builder.build(config, dataset, devices, members=len(self.members))

  def stacked_hyperparameters(self) -> dict[str, np.ndarray]:
    """Every key a member sets (optim.with_hyperparameters checks it is in VMAPPABLE_KEYS): its
    values over the members, the config's value for members that do not set it."""
    keys = sorted({key for member in self.members for key, _ in member.hyperparameters})
    return {key: np.asarray([dict(member.hyperparameters).get(key, _config_value(self.config, key))
                             for member in self.members], np.float32) for key in keys}

  def fit(self, workdir: str) -> tuple[loop.LoopResult, np.ndarray]:
    """Trains (resuming from workdir's checkpoint); the loop result and the losses
    [steps logged by this call, members]."""
    train_config = self.config.train
    batches = StackedBatches([train.train_batches(self.config, self.dataset, seed=int(seed))
                              for seed in self.seeds])
    manager = checkpointing.checkpoint_manager(workdir)
    state = self.run.init(self.seeds, self.stacked_hyperparameters())
    restored = checkpointing.restore_latest(manager, state, batches)
    state = restored if restored is not None else state
    start = int(np.asarray(jax.device_get(state.step)).reshape(-1)[0])
    writer = metric_writer.MetricWriter(workdir, enabled=jax.process_index() == 0)
    progress = hooks.ReportProgress(
        writer, total_steps=self.run.total_steps, start_step=start,
        clips_per_step=train_config.batch_size * len(self.members),
        every_steps=train_config.log_every_steps,
        description=f'train {len(self.members)} runs', enabled=jax.process_index() == 0)
    run_hooks = [progress,
                 hooks.CheckNonFinite(train_config.log_every_steps,
                                      checkpointing.checkpoint_dir(workdir),
                                      [str(member) for member in self.members]),
                 hooks.Checkpointing(manager, batches, train_config.checkpoint_every_steps)]
    try:
      result = loop.train_loop(self.run, state, batches, self.run.base_key(self.seeds), run_hooks,
                               stop_every_steps=train_config.get('stop_sync_every_steps', 10))
    finally:
      writer.close()
    return result, np.asarray(progress.losses).reshape(-1, len(self.members))

  def evaluate(self, stacked) -> list[dict]:
    """Test metrics of each member's final state (exact evaluation, as train_and_evaluate)."""
    return [train.score(self.run, self.run.member_state(stacked, index), self.dataset,
                        train.TEST, self.config.train.eval_batch_size)[0]
            for index in range(len(self.members))]
