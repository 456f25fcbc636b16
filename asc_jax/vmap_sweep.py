"""Seeds trained together: one compiled program steps S train states stacked on a leading axis.

jax.vmap maps the ordinary train step (asc_jax.steps) over the seed axis of the state, the batch
and the PRNG key, so seed s gets exactly what a separate run with config.seed = s gets: its own
initialisation, dropout and augmentation keys and data order. Only seeds are mapped: they leave
the program unchanged for every config, whereas other hyperparameters are baked into the model
and optimizer as constants. The seeds compile once instead of S times and their small per-seed
steps fill the devices better. Runs are not checkpointed: an interrupted seed group starts again.
"""

import functools
from typing import Optional, Sequence

import jax
import ml_collections
import numpy as np
import tqdm
from jax.sharding import NamedSharding, PartitionSpec

from asc_jax import parallel
from asc_jax import steps
from asc_jax import train
from asc_jax.data import datasets
from asc_jax.data import pipeline


def _keys(seeds: jax.Array) -> jax.Array:
  return jax.vmap(jax.random.key)(seeds)


class SeedGroup:
  """Trains `seeds` of one config in one vmapped program and evaluates each seed."""

  def __init__(self, config: ml_collections.ConfigDict, dataset: datasets.PreparedDataset,
               seeds: Sequence[int], devices: Optional[Sequence[jax.Device]] = None):
    self.trainer = train.Trainer(config, '', dataset, devices)   # model, optimizer, mesh, eval
    self.config, self.dataset, self.seeds = config, dataset, tuple(seeds)
    trainer, mesh = self.trainer, self.trainer.mesh
    replicated = parallel.replicated(mesh)
    self._batch_sharding = NamedSharding(mesh, PartitionSpec(None, parallel.DATA_AXIS))
    init = functools.partial(steps.init_state, trainer.model, trainer.tx, dataset.input_shape)
    self._init = jax.jit(lambda seeds: jax.vmap(init)(_keys(seeds)), out_shardings=replicated)
    self._base_keys = jax.jit(lambda seeds: _keys(seeds + 1), out_shardings=replicated)
    self._train_step = jax.jit(jax.vmap(steps.make_train_step(trainer.model, trainer.tx, config)),
                               in_shardings=(replicated, self._batch_sharding, replicated),
                               out_shardings=(replicated, replicated), donate_argnums=(0,))

  def _iterators(self) -> list:
    return [pipeline.train_iterator(
        self.dataset.sources['train'], global_batch_size=self.config.train.batch_size, seed=seed,
        device_names=self.dataset.device_names, process_index=jax.process_index(),
        process_count=jax.process_count()) for seed in self.seeds]

  def _stacked_batch(self, iterators) -> dict[str, jax.Array]:
    parts = [next(iterator) for iterator in iterators]
    return {name: jax.make_array_from_process_local_data(
        self._batch_sharding, np.stack([part[name] for part in parts])) for name in parts[0]}

  def fit(self) -> tuple[steps.TrainState, np.ndarray]:
    """The stacked final states and the losses [steps, seeds]."""
    seeds = np.asarray(self.seeds, np.int32)
    state, base_keys = self._init(seeds), self._base_keys(seeds)
    iterators, losses = self._iterators(), []
    total = self.trainer.total_steps
    clips = self.config.train.batch_size * len(self.seeds)
    with tqdm.tqdm(total=total * clips, desc=f'train {len(self.seeds)} seeds', unit='clip',
                   unit_scale=True, disable=jax.process_index() != 0) as progress:
      for _ in range(total):
        state, metrics = self._train_step(state, self._stacked_batch(iterators), base_keys)
        losses.append(metrics['loss'])
        progress.update(clips)
    bad = np.asarray(jax.device_get(state.nonfinite_step))
    if np.any(bad >= 0):
      seed = self.seeds[int(np.argmax(bad >= 0))]
      raise train.NonFiniteLossError(
          f'seed {seed}: the loss became NaN or inf at step {int(bad.max())}; lower '
          'config.train.learning_rate or set config.train.grad_clip_norm.')
    return state, np.asarray(jax.device_get(losses))

  def evaluate(self, stacked: steps.TrainState) -> list[dict]:
    """Test metrics of each seed's state (exact evaluation, as train_and_evaluate does)."""
    return [self.trainer.evaluate(jax.tree.map(functools.partial(_take, index=index), stacked),
                                  step=self.trainer.total_steps, write_files=False)
            for index in range(len(self.seeds))]


@jax.jit
def _take(leaf: jax.Array, index: int) -> jax.Array:
  return leaf[index]
