"""Clips per second of one jitted BC-ResNet(-Mod) step, for each convolution form.

Times the train step (forward + backward + SGD-momentum update with weight decay, batch
statistics updated, dropout on) or the eval forward pass on random log-mels, after warm-up;
reports the median step. Comparable to ../shared/bench/torch_bcresnet_mod.py with the same shapes.

  python benchmarks/model_step.py --impls=fast,lax --width=8 --batch=32 --mels=256 --frames=431
  python benchmarks/model_step.py --mode=eval --json
"""

import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import optax

from asc_jax import defaults
from asc_jax import models

_IMPLS = flags.DEFINE_list('impls', ['fast', 'lax'], 'Convolution forms to time.')
_NAME = flags.DEFINE_enum('name', 'bcresnet_mod', list(models.NETWORKS), 'Network.')
_WIDTH = flags.DEFINE_float('width', 8, 'k of BC-ResNet-Mod-k (tau of BC-ResNet).')
_BATCH = flags.DEFINE_integer('batch', 32, 'Clips per step.')
_MELS = flags.DEFINE_integer('mels', 256, 'Mel bins.')
_FRAMES = flags.DEFINE_integer('frames', 431, 'Frames.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', list(models.DTYPES), 'Compute dtype.')
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'eval'], 'What to time.')
_STEPS = flags.DEFINE_integer('steps', 5, 'Timed steps (the median is reported).')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed steps after compilation.')
_JSON = flags.DEFINE_bool('json', False, 'One JSON line per form instead of text.')


def make_step(model, tx):
  """The jitted step for the chosen mode, with (state, x, y, key) -> state."""

  def train_step(state, x, y, key):
    params, batch_stats, opt_state = state

    def loss_fn(params):
      logits, updates = model.apply({'params': params, 'batch_stats': batch_stats}, x, train=True,
                                    rngs={'dropout': key}, mutable=['batch_stats'])
      return optax.losses.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates

    grads, updates = jax.grad(loss_fn, has_aux=True)(params)
    deltas, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, deltas), updates['batch_stats'], opt_state

  if _MODE.value == 'train':
    return jax.jit(train_step, donate_argnums=0)
  eval_logits = jax.jit(lambda state, x: model.apply(
      {'params': state[0], 'batch_stats': state[1]}, x, train=False))

  def eval_step(state, x, y, key):
    del y, key
    eval_logits(state, x).block_until_ready()
    return state

  return eval_step


def time_form(impl: str) -> dict:
  config = defaults.bcresnet_mod_model(_WIDTH.value)
  config.update(name=_NAME.value, dtype=_DTYPE.value, conv_impl=impl)
  model = models.build_model(config)
  key = jax.random.key(0)
  x = jax.random.normal(key, (_BATCH.value, _MELS.value, _FRAMES.value))
  y = jax.random.randint(key, (_BATCH.value,), 0, config.num_classes)
  variables = model.init({'params': key}, x[:1], train=False)
  tx = optax.chain(optax.add_decayed_weights(1e-3), optax.sgd(0.01, momentum=0.9))
  state = (variables['params'], variables['batch_stats'], tx.init(variables['params']))
  step = make_step(model, tx)
  start = time.perf_counter()
  state = jax.block_until_ready(step(state, x, y, key))
  compile_s = time.perf_counter() - start
  for _ in range(_WARMUP.value):
    state = jax.block_until_ready(step(state, x, y, key))
  times = []
  for index in range(_STEPS.value):
    start = time.perf_counter()
    state = jax.block_until_ready(step(state, x, y, jax.random.fold_in(key, index)))
    times.append(time.perf_counter() - start)
  median = sorted(times)[len(times) // 2]
  params = sum(leaf.size for leaf in jax.tree.leaves(variables['params']))
  return dict(framework=f'jax {jax.__version__}', device=jax.devices()[0].device_kind,
              mode=_MODE.value, conv_impl=impl, name=_NAME.value, width=_WIDTH.value,
              params=params, batch=_BATCH.value, input=[_MELS.value, _FRAMES.value],
              dtype=_DTYPE.value, first_call_s=round(compile_s, 2),
              median_step_s=round(median, 4), clips_per_s=round(_BATCH.value / median, 2))


def main(argv):
  del argv
  for impl in _IMPLS.value:
    result = time_form(impl)
    if _JSON.value:
      print(json.dumps(result), flush=True)
    else:
      print('  '.join(f'{key}={value}' for key, value in result.items()), flush=True)


if __name__ == '__main__':
  app.run(main)
