"""Pure, jittable training and evaluation steps, and the train state they carry.

A step is built from an *objective*: objective(params, batch_stats, batch, key) ->
(loss, (metrics, new batch_stats)). `make_train_step` wraps any objective with the gradient,
the optax update and the non-finite guard, so the classifier, a distilled or quantized student
and the device translator share one step. Nothing here reads files or compiles: asc_jax.builder
jits these functions, and whatever a step needs from disk (a translator, teacher outputs) is
loaded where the run is set up and passed in.

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

Objective = Callable[[Any, Any, dict, jax.Array], tuple[jax.Array, tuple[dict, Any]]]
# (key, logmel [B, F, T], device [B]) -> logmel: a batch transform that needs the device index.
DeviceAugmentation = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
# Fold-in index of the device augmentation's key under the step's augmentation key, clear of the
# indices asc_jax.augment.chain folds in for its augmentations.
DEVICE_AUGMENTATION_KEY = 100


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  nonfinite_step: jax.Array   # -1 until a step produced a non-finite loss or gradient; then that step.


def new_state(params: Any, batch_stats: Any, tx: optax.GradientTransformation) -> TrainState:
  """A state at step 0 around given weights, with a fresh optimizer state."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params), nonfinite_step=jnp.full((), -1, jnp.int32))


def init_state(model: nn.Module, tx: optax.GradientTransformation, example_inputs: tuple,
               key: jax.Array, **init_kwargs) -> TrainState:
  """Initial parameters, BatchNorm statistics and optimizer state; `example_inputs` are the
  model's positional inputs with a batch of one (a [1, F, T] log-mel for the classifier)."""
  variables = model.init({'params': key, 'dropout': key}, *example_inputs, **init_kwargs)
  return new_state(variables['params'], variables.get('batch_stats', {}), tx)


def variables_state(variables: dict[str, Any]) -> TrainState:
  """A state holding only weights (no optimizer), for scoring a stored model."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=variables['params'],
                    batch_stats=variables.get('batch_stats', {}), opt_state=(),
                    nonfinite_step=jnp.full((), -1, jnp.int32))


def make_train_step(objective: Objective, tx: optax.GradientTransformation) -> Callable:
  """Returns train_step(state, batch, base_key) -> (state, metrics with 'loss').

  A step whose loss or gradient is not finite leaves the state unchanged and records its number
  in `nonfinite_step` (the loop's non-finite hook stops the run on it).
  """

  def train_step(state: TrainState, batch: dict[str, jax.Array], base_key: jax.Array):
    step_key = jax.random.fold_in(base_key, state.step)
    (loss, (metrics, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(
        state.params, state.batch_stats, batch, step_key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    stepped = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
    kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), stepped, state)
    first_bad = jnp.where((state.nonfinite_step < 0) & ~finite, state.step, state.nonfinite_step)
    return kept.replace(nonfinite_step=first_bad), {'loss': loss, **metrics}

  return train_step


def soft_targets(labels: jax.Array, num_classes: int, label_smoothing: float) -> jax.Array:
  onehot = jax.nn.one_hot(labels, num_classes)
  return optax.smooth_labels(onehot, label_smoothing) if label_smoothing > 0 else onehot


def cross_entropy(logits: jax.Array, targets: dict[str, jax.Array], batch: dict) -> jax.Array:
  """The default per-example loss: cross-entropy against the (smoothed, mixed) label targets."""
  del batch
  return optax.losses.softmax_cross_entropy(logits, targets['label'])


def classifier_objective(model: nn.Module, config: ml_collections.ConfigDict,
                         loss_fn: Callable = cross_entropy,
                         device_augmentation: Optional[DeviceAugmentation] = None) -> Objective:
  """The scene classifier's objective on batches of 'logmel' [B, F, T] and 'label' [B].

  Order: device augmentation (translation) -> config.augment's batch transforms -> model ->
  `loss_fn(logits, targets, batch)` per example, averaged. Targets hold 'label' (one-hot,
  smoothed and mixed like the inputs) and, when the batch carries it, 'teacher_probs'.
  """
  num_classes = config.model.num_classes

  def objective(params, batch_stats, batch, key):
    augment_key, dropout_key = jax.random.split(key)
    targets = {'label': soft_targets(batch['label'], num_classes, config.train.label_smoothing)}
    if 'teacher_probs' in batch:
      targets['teacher_probs'] = batch['teacher_probs']
    inputs = batch['logmel']
    if device_augmentation is not None:
      inputs = device_augmentation(jax.random.fold_in(augment_key, DEVICE_AUGMENTATION_KEY),
                                   inputs, batch['device'])
    inputs, targets = augment_chain.augment_batch(augment_key, inputs, targets, config.augment)
    logits, updates = model.apply({'params': params, 'batch_stats': batch_stats}, inputs,
                                  train=True, rngs={'dropout': dropout_key},
                                  mutable=['batch_stats'])
    loss = loss_fn(logits, targets, batch).mean()
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
    return loss, ({'accuracy': accuracy}, updates['batch_stats'])

  return objective


def make_eval_step(model: nn.Module) -> Callable:
  """Returns eval_step(state, batch) -> float32 logits [B, classes] (BatchNorm in inference mode)."""

  def eval_step(state: TrainState, batch: dict[str, jax.Array]) -> jax.Array:
    logits = model.apply({'params': state.params, 'batch_stats': state.batch_stats},
                         batch['logmel'], train=False)
    return logits.astype(jnp.float32)

  return eval_step
