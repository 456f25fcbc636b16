"""The one builder: from a config, a dataset's description and the devices, everything a run
needs (model, optimizer and schedule, mesh and shardings, compiled init, train and eval steps).

This is the only module that calls `jax.jit` on a step or decides a sharding: the train state is
replicated over the 'data' mesh axis and every batch is split along it (asc_jax.parallel holds
the mesh and sharding primitives). A *stacked* run trains `members` runs that differ only in
their seed and in the hyperparameters held in the optimizer state (asc_jax.optim.VMAPPABLE_KEYS)
as one jax.vmap-ed program: its state has a leading member axis and its batches are
[members, B, ...], split over devices along B.

What is trained is a `Task`: the scene classifier (`classifier_task`, which a compression run
fills with a quantized model, a distillation loss and a pruning transformation) or anything else
with an objective, such as the device translator (asc_jax.translation.fit).
"""

import dataclasses
import functools
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from asc_jax import models
from asc_jax import optim
from asc_jax import parallel
from asc_jax import steps


@dataclasses.dataclass(frozen=True)
class Task:
  """What a run trains and how long.

  example_inputs / init_kwargs: the model's inputs (batch of one) and keyword arguments for
  model.init. objective: see asc_jax.steps. evaluate(state, batch) -> outputs of the eval step.
  """
  model: Any
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  example_inputs: tuple
  init_kwargs: Mapping[str, Any]
  objective: steps.Objective
  evaluate: Callable
  batch_size: int
  steps_per_epoch: int
  total_steps: int


@dataclasses.dataclass(frozen=True)
class Run:
  """A compiled task on a mesh. `members` is 0 for a single run, else the stacked run count."""
  task: Task
  mesh: jax.sharding.Mesh
  members: int
  init: Callable              # single: init(key); stacked: init(seeds [M], {hyperparameter: [M]}).
  train_step: Callable        # (state, batch, base_key) -> (state, metrics); state is donated.
  eval_step: Callable         # (state of ONE run, batch) -> outputs, batch split over devices.
  base_key: Callable          # single: base_key(seed); stacked: base_key(seeds [M]).
  state_sharding: NamedSharding
  batch_sharding: NamedSharding

  @property
  def total_steps(self) -> int:
    return self.task.total_steps

  def global_batch(self, local_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """One process's part of a batch (stacked: [M, B_local, ...]) as global sharded arrays."""
    return {name: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(value))
            for name, value in local_batch.items()}

  def eval_batch(self, local_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """An (unstacked) evaluation batch as global arrays split over the devices."""
    return parallel.to_global_batch(local_batch, self.mesh)

  def place_state(self, state: Any) -> Any:
    """A host or single-device state replicated on the mesh (the same on every process)."""
    return parallel.replicate(state, self.mesh)

  def warm_state(self, variables: Mapping[str, Any]) -> steps.TrainState:
    """A single run's state at step 0 holding given weights, with a fresh optimizer state."""
    params = jax.tree.map(jnp.asarray, variables['params'])
    batch_stats = jax.tree.map(jnp.asarray, variables.get('batch_stats', {}))
    return self.place_state(steps.new_state(params, batch_stats, self.task.tx))

  def member_state(self, stacked: steps.TrainState, index: int) -> steps.TrainState:
    return jax.tree.map(functools.partial(_take, index=index), stacked)


@jax.jit
def _take(leaf: jax.Array, index: int) -> jax.Array:
  return leaf[index]


def compile_task(task: Task, mesh: jax.sharding.Mesh, members: int = 0) -> Run:
  """Jits the task's init, train and eval steps for `mesh` (stacked over `members` if > 0)."""
  replicated = parallel.replicated(mesh)
  init = functools.partial(steps.init_state, task.model, task.tx, task.example_inputs,
                           **task.init_kwargs)
  train_step = steps.make_train_step(task.objective, task.tx)
  eval_step = jax.jit(task.evaluate, in_shardings=(replicated, parallel.batch_sharded(mesh)),
                      out_shardings=parallel.batch_sharded(mesh))
  if members:
    batch_sharding = NamedSharding(mesh, PartitionSpec(None, parallel.DATA_AXIS))
    keys = jax.vmap(jax.random.key)

    def init_members(seeds, hyperparameters):
      states = jax.vmap(init)(keys(seeds))
      return states.replace(opt_state=optim.with_hyperparameters(states.opt_state,
                                                                 hyperparameters))

    compiled_init = jax.jit(init_members, out_shardings=replicated)
    base_key = jax.jit(lambda seeds: keys(seeds + 1), out_shardings=replicated)
    train_step = jax.vmap(train_step)
  else:
    batch_sharding = parallel.batch_sharded(mesh)
    compiled_init = jax.jit(init, out_shardings=replicated)
    base_key = jax.jit(lambda seed: jax.random.key(seed + 1), out_shardings=replicated)
  compiled_step = jax.jit(parallel.traced_on(train_step, mesh),
                          in_shardings=(replicated, batch_sharding, replicated),
                          out_shardings=(replicated, replicated), donate_argnums=(0,))
  return Run(task=task, mesh=mesh, members=members, init=compiled_init, train_step=compiled_step,
             eval_step=eval_step, base_key=base_key, state_sharding=replicated,
             batch_sharding=batch_sharding)


def stored_model_scorer(model: Any, variables: Mapping[str, Any], mesh: jax.sharding.Mesh
                        ) -> tuple[Callable, steps.TrainState]:
  """(compiled eval step, its state replicated on `mesh`) for stored weights: a source run, a
  teacher or a quantized student, scored with asc_jax.scoring.score_split."""
  eval_step = jax.jit(steps.make_eval_step(model),
                      in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
                      out_shardings=parallel.batch_sharded(mesh))
  return eval_step, parallel.replicate(steps.variables_state(dict(variables)), mesh)


def check_compatible(config: ml_collections.ConfigDict, dataset: Any,
                     mesh: jax.sharding.Mesh) -> None:
  if config.model.num_classes != len(dataset.class_names):
    raise ValueError(f'config.model.num_classes={config.model.num_classes} but the dataset '
                     f'{config.data.name} has {len(dataset.class_names)} classes: set '
                     f'--config.model.num_classes={len(dataset.class_names)}.')
  parallel.check_batch_size(config.train.batch_size, 'config.train.batch_size', mesh)
  parallel.check_batch_size(config.train.eval_batch_size, 'config.train.eval_batch_size', mesh)


def training_length(train: ml_collections.ConfigDict, num_train_examples: int) -> tuple[int, int]:
  """(steps per epoch, total steps) of config.train on a split of `num_train_examples`."""
  steps_per_epoch = num_train_examples // train.batch_size
  if steps_per_epoch == 0:
    raise ValueError(f'config.train.batch_size={train.batch_size} exceeds the '
                     f'{num_train_examples} training examples: lower it.')
  return steps_per_epoch, int(train.num_epochs * steps_per_epoch)


def classifier_task(config: ml_collections.ConfigDict, dataset: Any, *,
                    model: Optional[Any] = None, loss_fn: Callable = steps.cross_entropy,
                    batch_transform: Optional[Callable[[dict], dict]] = None,
                    device_augmentation: Optional[steps.DeviceAugmentation] = None,
                    extra_transform: Optional[optax.GradientTransformation] = None) -> Task:
  """The scene classifier of `config` on `dataset` (input_shape, num_examples['train']).

  model: default config.model's network. loss_fn(logits, targets, batch): per-example loss.
  batch_transform: applied to each batch first (e.g. adds 'teacher_probs').
  device_augmentation: (key, logmel, device) -> logmel, e.g. device translation.
  extra_transform: appended to the optax chain (e.g. magnitude pruning).
  """
  steps_per_epoch, total_steps = training_length(config.train, dataset.num_examples['train'])
  model = model if model is not None else models.build_model(config.model)
  tx, schedule = optim.make_optimizer(config.train, steps_per_epoch, extra_transform)
  objective = steps.classifier_objective(model, config, loss_fn, device_augmentation)
  if batch_transform is not None:
    inner = objective
    objective = lambda params, stats, batch, key: inner(params, stats, batch_transform(batch), key)
  return Task(model=model, tx=tx, schedule=schedule,
              example_inputs=(jnp.zeros((1, *dataset.input_shape)),),
              init_kwargs={'train': False}, objective=objective,
              evaluate=steps.make_eval_step(model), batch_size=config.train.batch_size,
              steps_per_epoch=steps_per_epoch, total_steps=total_steps)


def build(config: ml_collections.ConfigDict, dataset: Any,
          devices: Optional[Sequence[jax.Device]] = None, *, members: int = 0,
          **task_options) -> Run:
  """The classifier run of `config` on `dataset` over `devices` (default: every device of every
  process); `task_options` go to classifier_task; `members` > 0 stacks that many runs."""
  mesh = parallel.make_mesh(devices)
  check_compatible(config, dataset, mesh)
  return compile_task(classifier_task(config, dataset, **task_options), mesh, members)
