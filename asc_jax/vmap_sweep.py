"""Runs trained together: one compiled program steps S train states stacked on a leading axis.

The runs of a group differ only in their seed and in the optimizer hyperparameters that live in
the optimizer state (asc_jax.optim.VMAPPABLE_KEYS: peak learning rate, weight decay). jax.vmap maps
the ordinary train step (asc_jax.steps) over the run axis of the state, the batch and the PRNG
key, so each run gets exactly what its separate run gets: its own initialisation, dropout and
augmentation keys, data order and hyperparameter values. Other hyperparameters (model widths,
ResNorm lambda, augmentation rates, ...) are constants of the compiled program and cannot be mapped.
The group compiles once instead of S times and its small per-run steps fill the devices better.
Runs are not checkpointed: an interrupted group starts again.
"""

import dataclasses
import functools
from typing import Optional, Sequence

import jax
import ml_collections
import numpy as np
import tqdm
from jax.sharding import NamedSharding, PartitionSpec

from asc_jax import optim
from asc_jax import parallel
from asc_jax import steps
from asc_jax import train
from asc_jax.data import datasets
from asc_jax.data import input_pipeline


def _keys(seeds: jax.Array) -> jax.Array:
  return jax.vmap(jax.random.key)(seeds)


@dataclasses.dataclass(frozen=True)
class Member:
  """One run of a group: its seed and its values of optim.VMAPPABLE_KEYS (others: the config's)."""
  seed: int
  hyperparameters: tuple[tuple[str, float], ...] = ()


class RunGroup:
  """Trains the `members` of one config in one vmapped program and evaluates each of them."""

  def __init__(self, config: ml_collections.ConfigDict, dataset: datasets.PreparedDataset,
               members: Sequence[Member], devices: Optional[Sequence[jax.Device]] = None):
    self.trainer = train.Trainer(config, '', dataset, devices)   # model, optimizer, mesh, eval
    self.config, self.dataset, self.members = config, dataset, tuple(members)
    self.seeds = tuple(member.seed for member in self.members)
    trainer, mesh = self.trainer, self.trainer.mesh
    replicated = parallel.replicated(mesh)
    self._batch_sharding = NamedSharding(mesh, PartitionSpec(None, parallel.DATA_AXIS))
    init = functools.partial(steps.init_state, trainer.model, trainer.tx, dataset.input_shape)

    def init_members(seeds, hyperparameters):
      states = jax.vmap(init)(_keys(seeds))
      return states.replace(opt_state=optim.with_hyperparameters(states.opt_state,
                                                                 hyperparameters))

    self._init = jax.jit(init_members, out_shardings=replicated)
    self._base_keys = jax.jit(lambda seeds: _keys(seeds + 1), out_shardings=replicated)
    self._train_step = jax.jit(jax.vmap(steps.make_train_step(trainer.model, trainer.tx, config)),
                               in_shardings=(replicated, self._batch_sharding, replicated),
                               out_shardings=(replicated, replicated), donate_argnums=(0,))

  def _iterators(self) -> list:
    return [input_pipeline.train_iterator(
        self.dataset.sources['train'], global_batch_size=self.config.train.batch_size, seed=seed,
        device_names=self.dataset.device_names, process_index=jax.process_index(),
        process_count=jax.process_count()) for seed in self.seeds]

  def _stacked_batch(self, iterators) -> dict[str, jax.Array]:
    parts = [next(iterator) for iterator in iterators]
    return {name: jax.make_array_from_process_local_data(
        self._batch_sharding, np.stack([part[name] for part in parts])) for name in parts[0]}

  def stacked_hyperparameters(self) -> dict[str, np.ndarray]:
    """Every key a member sets (optim.with_hyperparameters checks it is in VMAPPABLE_KEYS): its
    values over the members, the config's value for members that do not set it."""
    keys = sorted({key for member in self.members for key, _ in member.hyperparameters})
    return {key: np.asarray([dict(member.hyperparameters).get(key, _config_value(self.config, key))
                             for member in self.members], np.float32) for key in keys}

  def fit(self) -> tuple[steps.TrainState, np.ndarray]:
    """The stacked final states and the losses [steps, members]."""
    seeds = np.asarray(self.seeds, np.int32)
    state = self._init(seeds, self.stacked_hyperparameters())
    base_keys = self._base_keys(seeds)
    iterators, losses = self._iterators(), []
    total = self.trainer.total_steps
    clips = self.config.train.batch_size * len(self.members)
    with tqdm.tqdm(total=total * clips, desc=f'train {len(self.members)} runs', unit='clip',
                   unit_scale=True, disable=jax.process_index() != 0) as progress:
      for _ in range(total):
        state, metrics = self._train_step(state, self._stacked_batch(iterators), base_keys)
        losses.append(metrics['loss'])
        progress.update(clips)
    bad = np.asarray(jax.device_get(state.nonfinite_step))
    if np.any(bad >= 0):
      member = self.members[int(np.argmax(bad >= 0))]
      raise train.NonFiniteLossError(
          f'{member}: the loss became NaN or inf at step {int(bad.max())}; lower '
          'config.train.learning_rate or set config.train.grad_clip_norm.')
    return state, np.asarray(jax.device_get(losses))

  def evaluate(self, stacked: steps.TrainState) -> list[dict]:
    """Test metrics of each member's state (exact evaluation, as train_and_evaluate does)."""
    return [self.trainer.evaluate(jax.tree.map(functools.partial(_take, index=index), stacked),
                                  step=self.trainer.total_steps, write_files=False)
            for index in range(len(self.members))]


@jax.jit
def _take(leaf: jax.Array, index: int) -> jax.Array:
  return leaf[index]


def _config_value(config: ml_collections.ConfigDict, key: str) -> float:
  return functools.reduce(getattr, key.split('.'), config)
