"""The optax pipeline: learning-rate schedule, weight decay, clipping, optimizer, pruning masks.

Order of the chain: clip -> weight decay -> optimizer (with the schedule) -> magnitude pruning.
Pruning comes last so the masks it keeps in its state see the final update and pruned weights
stay exactly zero after every step.

The peak learning rate and the weight decay are held in the optimizer state
(optax.inject_hyperparams), not baked into the compiled step as constants: runs that differ only
in them (and in the seed) share one program, which is what lets asc_jax.vmap_sweep train them
together. `VMAPPABLE_KEYS` names them as config keys.
"""

from typing import Any, Mapping, Optional

import jax.numpy as jnp
import ml_collections
import optax

# config key -> the hyperparameter's name in the optimizer state.
VMAPPABLE_KEYS = {'train.learning_rate': 'learning_rate', 'train.weight_decay': 'weight_decay'}


def learning_rate_schedule(train: ml_collections.ConfigDict, steps_per_epoch: int,
                           peak: Any = None) -> optax.Schedule:
  """Linear warm-up from 0 to the peak rate (`peak`, default train.learning_rate; may be traced),
  then cosine decay to 0 at the last step.

  `train.warmup_epochs` may be a fraction (5 % of 25 epochs = 1.25): the warm-up lasts that many
  epochs rounded to the nearest step.
  """
  total_steps = max(1, int(train.num_epochs * steps_per_epoch))
  warmup_steps = min(round(float(train.warmup_epochs) * steps_per_epoch), total_steps - 1)
  shape = optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=1.0,
                                             warmup_steps=warmup_steps, decay_steps=total_steps,
                                             end_value=0.0)
  peak = train.learning_rate if peak is None else peak
  return lambda count: peak * shape(count)


def base_optimizer(train: ml_collections.ConfigDict, schedule: optax.Schedule, weight_decay: Any
                   ) -> optax.GradientTransformation:
  """The optimizer named by `train.optimizer`, driven by `schedule`."""
  if train.optimizer == 'sgd':
    return optax.sgd(schedule, momentum=train.momentum or None)
  if train.optimizer == 'adam':
    return optax.adam(schedule)
  if train.optimizer == 'adamw':
    return optax.adamw(schedule, weight_decay=weight_decay)
  raise ValueError(f'config.train.optimizer={train.optimizer!r} is unknown: use sgd, adam or adamw.')


def make_optimizer(train: ml_collections.ConfigDict, steps_per_epoch: int,
                   pruning: Optional[optax.GradientTransformation] = None
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The full chain for `config.train`, plus the schedule (for logging the learning rate).

  The chain's structure depends only on config keys outside VMAPPABLE_KEYS (weight decay is
  always a step of it, adding 0 when it is 0), so runs that differ in those keys share one state
  layout and one compiled program.
  """

  def chain(learning_rate: jnp.ndarray, weight_decay: jnp.ndarray) -> optax.GradientTransformation:
    parts = []
    if train.grad_clip_norm > 0:
      parts.append(optax.clip_by_global_norm(train.grad_clip_norm))
    if train.optimizer != 'adamw':
      parts.append(optax.add_decayed_weights(weight_decay))
    schedule = learning_rate_schedule(train, steps_per_epoch, learning_rate)
    parts.append(base_optimizer(train, schedule, weight_decay))
    if pruning is not None:
      parts.append(pruning)
    return optax.chain(*parts)

  tx = optax.inject_hyperparams(chain)(learning_rate=train.learning_rate,
                                       weight_decay=train.weight_decay)
  return tx, learning_rate_schedule(train, steps_per_epoch)


def with_hyperparameters(opt_state: optax.InjectHyperparamsState, values: Mapping[str, Any]
                         ) -> optax.InjectHyperparamsState:
  """`opt_state` of make_optimizer's chain with the named VMAPPABLE_KEYS values replaced
  (arrays; a leading axis when the state is stacked for jax.vmap)."""
  hyperparams = dict(opt_state.hyperparams)
  for key, value in values.items():
    if key not in VMAPPABLE_KEYS:
      raise KeyError(f'{key} is not held in the optimizer state; use one of '
                     f'{", ".join(VMAPPABLE_KEYS)}.')
    name = VMAPPABLE_KEYS[key]
    hyperparams[name] = jnp.asarray(value, hyperparams[name].dtype)
  return opt_state._replace(hyperparams=hyperparams)
