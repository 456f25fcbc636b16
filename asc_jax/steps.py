"""Pure, jittable training and evaluation steps, and the train state they carry.

Randomness comes only from a base key folded with the step number, so a resumed run draws the
same dropout and augmentation as an uninterrupted one, on any number of devices.
"""

from typing import Any, Callable, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from asc_jax.augment import chain as augment_chain
from asc_jax.augment import translation as augment_translation


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  nonfinite_step: jax.Array   # -1 until a step produced a non-finite loss or gradient; then that step.


def init_state(model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, int],
               key: jax.Array) -> TrainState:
  """Initial parameters, BatchNorm statistics and optimizer state for inputs [N, F, T]."""
  variables = model.init({'params': key, 'dropout': key}, jnp.zeros((1, *input_shape)), train=False)
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}), opt_state=tx.init(params),
                    nonfinite_step=jnp.full((), -1, jnp.int32))


def soft_targets(labels: jax.Array, num_classes: int, label_smoothing: float) -> jax.Array:
  onehot = jax.nn.one_hot(labels, num_classes)
  return optax.smooth_labels(onehot, label_smoothing) if label_smoothing > 0 else onehot


def make_train_step(model: nn.Module, tx: optax.GradientTransformation,
                    config: ml_collections.ConfigDict,
                    loss_fn: Optional[Callable[..., jax.Array]] = None) -> Callable:
  """Returns train_step(state, batch, base_key) -> (state, metrics).

  `batch` holds 'logmel' [B, F, T] and 'label' [B] (plus anything `loss_fn` reads, such as
  'teacher_logits'). `loss_fn(logits, targets, batch)` returns per-example losses; the default is
  cross-entropy against the (smoothed, possibly mixed) one-hot targets.
  """
  num_classes = config.model.num_classes
  loss_fn = loss_fn or (lambda logits, targets, batch: optax.losses.softmax_cross_entropy(
      logits, targets['label']))
  translate = augment_translation.step_translation(config)   # None unless translation is on.

  def train_step(state: TrainState, batch: dict[str, jax.Array], base_key: jax.Array):
    step_key = jax.random.fold_in(base_key, state.step)
    augment_key, dropout_key = jax.random.split(step_key)
    targets = {'label': soft_targets(batch['label'], num_classes, config.train.label_smoothing)}
    if 'teacher_probs' in batch:
      targets['teacher_probs'] = batch['teacher_probs']
    inputs = batch['logmel']
    if translate is not None:
      inputs = translate(jax.random.fold_in(augment_key, augment_translation.KEY_INDEX), inputs,
                         batch['device'])
    inputs, targets = augment_chain.augment_batch(augment_key, inputs, targets, config.augment)

    def objective(params):
      logits, updates = model.apply({'params': params, 'batch_stats': state.batch_stats}, inputs,
                                    train=True, rngs={'dropout': dropout_key},
                                    mutable=['batch_stats'])
      return loss_fn(logits, targets, batch).mean(), (logits, updates['batch_stats'])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    stepped = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.global_norm(grads))
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), stepped, state)
    first_bad = jnp.where((state.nonfinite_step < 0) & ~finite, state.step, state.nonfinite_step)
    new_state = new_state.replace(nonfinite_step=first_bad)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
    return new_state, {'loss': loss, 'accuracy': accuracy}

  return train_step


def make_eval_step(model: nn.Module) -> Callable:
  """Returns eval_step(state, batch) -> float32 logits [B, classes] (BatchNorm in inference mode)."""

  def eval_step(state: TrainState, batch: dict[str, jax.Array]) -> jax.Array:
    logits = model.apply({'params': state.params, 'batch_stats': state.batch_stats},
                         batch['logmel'], train=False)
    return logits.astype(jnp.float32)

  return eval_step
