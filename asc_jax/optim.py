"""The optax pipeline: learning-rate schedule, weight decay, clipping, optimizer, pruning masks.

Order of the chain: clip -> weight decay -> optimizer (with the schedule) -> magnitude pruning.
Pruning comes last so the masks it keeps in its state see the final update and pruned weights
stay exactly zero after every step.
"""

from typing import Optional

import ml_collections
import optax


def learning_rate_schedule(train: ml_collections.ConfigDict, steps_per_epoch: int
                           ) -> optax.Schedule:
  """Linear warm-up from 0 to the peak rate, then cosine decay to 0 at the last step."""
  total_steps = max(1, int(train.num_epochs * steps_per_epoch))
  warmup_steps = min(int(train.warmup_epochs * steps_per_epoch), total_steps - 1)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=train.learning_rate, warmup_steps=warmup_steps,
      decay_steps=total_steps, end_value=0.0)


def base_optimizer(train: ml_collections.ConfigDict, schedule: optax.Schedule
                   ) -> optax.GradientTransformation:
  """The optimizer named by `train.optimizer`, driven by `schedule`."""
  if train.optimizer == 'sgd':
    return optax.sgd(schedule, momentum=train.momentum or None)
  if train.optimizer == 'adam':
    return optax.adam(schedule)
  if train.optimizer == 'adamw':
    return optax.adamw(schedule, weight_decay=train.weight_decay)
  raise ValueError(f'config.train.optimizer={train.optimizer!r} is unknown: use sgd, adam or adamw.')


def make_optimizer(train: ml_collections.ConfigDict, steps_per_epoch: int,
                   pruning: Optional[optax.GradientTransformation] = None
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The full chain for `config.train`, plus the schedule (for logging the learning rate)."""
  schedule = learning_rate_schedule(train, steps_per_epoch)
  parts = []
  if train.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(train.grad_clip_norm))
  if train.weight_decay > 0 and train.optimizer != 'adamw':
    parts.append(optax.add_decayed_weights(train.weight_decay))
  parts.append(base_optimizer(train, schedule))
  if pruning is not None:
    parts.append(pruning)
  return optax.chain(*parts), schedule
