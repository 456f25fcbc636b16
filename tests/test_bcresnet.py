"""BC-ResNet and BC-ResNet-Mod: published parameter counts, shapes, SubSpectralNorm, both conv forms."""

import math
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asc_jax import complexity
from asc_jax import models
from asc_jax.models import bcresnet
from asc_jax.models import layers

from conftest import load_config_file

CONFIG_FILE = os.path.join(os.path.dirname(__file__), '..', 'configs', 'bcresnet.py')
PUBLISHED_PARAMS = {'mod1': 8_035, 'mod4': 85_810, 'mod8': 314_810, 'kws_tau1': 9_232,
                    'kws_tau1.5': 17_154, 'kws_tau2': 27_284, 'kws_tau3': 54_168,
                    'kws_tau6': 187_812, 'kws_tau8': 321_068}


def _config(variant, **model_overrides):
  config = load_config_file(CONFIG_FILE, variant)
  config.model.update(model_overrides)
  return config


def _init(model, x, seed=0):
  return jax.jit(lambda x: model.init({'params': jax.random.key(seed)}, x, train=False))(x)


def _count(tree):
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize('variant', list(PUBLISHED_PARAMS))
def test_parameter_count_equals_published(variant):
  config = _config(variant)
  model = models.build_model(config.model)
  shapes = jax.eval_shape(lambda x: model.init({'params': jax.random.key(0)}, x, train=False),
                          jnp.zeros((1, config.features.n_mels, 101)))
  assert _count(shapes['params']) == PUBLISHED_PARAMS[variant]


def _output_shapes(variant, mels, frames):
  model = models.build_model(_config(variant).model)
  return {call.path: call.output_shape for call in complexity.trace_layers(model, (mels, frames))}


@pytest.mark.parametrize('frames, time_sizes', [(431, (216, 108, 54)), (429, (215, 107, 53))])
def test_mod_feature_map_shapes(frames, time_sizes):
  shapes = _output_shapes('mod8', 256, frames)
  assert shapes['stem'] == (128, time_sizes[0], 160)
  assert shapes['stage1_pool'] == (64, time_sizes[1], 80)
  assert shapes['stage2_pool'] == (32, time_sizes[2], 120)
  assert shapes['stage1_block0/time_conv'] == (1, time_sizes[0], 80)
  assert shapes['head'] == (32, time_sizes[2], 10)


def test_kws_feature_map_shapes_on_40_by_101():
  shapes = _output_shapes('kws_tau1', 40, 101)
  assert shapes['stem'] == (20, 101, 16)
  assert shapes['stage2_block0/freq_conv'] == (10, 101, 12)
  assert shapes['stage3_block0/freq_conv'] == (5, 101, 16)
  assert shapes['head_dw'] == (1, 101, 20)


def test_forward_on_one_full_clip():
  model = models.build_model(_config('mod1').model)
  x = jax.random.normal(jax.random.key(1), (1, 256, 431))
  logits, _ = jax.jit(lambda x: model.init_with_output(jax.random.key(0), x, train=False))(x)
  assert logits.shape == (1, 10) and logits.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(logits)))


def _train_loss(model, variables, x, labels):
  """loss(params, dropout_key) -> (cross-entropy, (logits, new batch statistics)), train mode."""

  def loss(params, dropout_key):
    logits, updates = model.apply({**variables, 'params': params}, x, train=True,
                                  rngs={'dropout': dropout_key}, mutable=['batch_stats'])
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(log_probs[jnp.arange(len(labels)), labels]), (logits, updates['batch_stats'])

  return loss


def _paths_without_gradient(grads):
  return [jax.tree_util.keystr(path) for path, grad in jax.tree_util.tree_flatten_with_path(grads)[0]
          if not np.any(np.asarray(grad) != 0)]


@pytest.mark.parametrize('variant, mels', [('mod1', 32), ('kws_tau1', 40)])
def test_gradients_reach_every_parameter_and_keys_fix_the_output(variant, mels):
  model = models.build_model(_config(variant).model)
  x = jax.random.normal(jax.random.key(1), (4, mels, 20))
  init = jax.jit(lambda key: model.init({'params': key}, x, train=False))
  variables = init(jax.random.key(0))
  jax.tree.map(np.testing.assert_array_equal, variables, init(jax.random.key(0)))
  other = init(jax.random.key(1))
  assert not np.array_equal(variables['params']['stem']['kernel'], other['params']['stem']['kernel'])

  step = jax.jit(jax.value_and_grad(_train_loss(model, variables, x, jnp.arange(4)), has_aux=True))
  (_, (logits, stats)), grads = step(variables['params'], jax.random.key(5))
  assert _paths_without_gradient(grads) == []
  np.testing.assert_array_equal(logits, step(variables['params'], jax.random.key(5))[0][1][0])
  assert not np.array_equal(logits, step(variables['params'], jax.random.key(6))[0][1][0])
  np.testing.assert_array_equal(variables['batch_stats']['stage1_block0']['time_bn']['mean'], 0.0)
  assert np.all(np.asarray(stats['stage1_block0']['time_bn']['mean']) != 0.0)


# Every convolution kind of both networks: (features, kernel, strides, padding, dilation, groups,
# bias) for 4 input channels. 1x1; 3x1 depthwise with and without frequency stride; dilated 1x3
# depthwise; 5x5 depthwise (BC-ResNet head); 5x5 stride-2 full convolution with bias (stem).
CONV_KINDS = [(5, (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, False),
              (4, (3, 1), (2, 1), ((1, 1), (0, 0)), (1, 1), 4, False),
              (4, (3, 1), (1, 1), ((1, 1), (0, 0)), (1, 1), 4, False),
              (4, (1, 3), (1, 1), ((0, 0), (2, 2)), (1, 2), 4, False),
              (4, (5, 5), (1, 1), ((0, 0), (2, 2)), (1, 1), 4, False),
              (6, (5, 5), (2, 2), ((2, 2), (2, 2)), (1, 1), 1, True)]


def test_fast_and_lax_convolutions_agree_with_gradients():
  """Outputs and gradients (input, kernel, bias) of the two forms, for every convolution kind."""
  x = jax.random.normal(jax.random.key(1), (2, 8, 7, 4))

  @jax.jit
  def outputs_and_gradients():
    results = []
    for features, kernel, strides, padding, dilation, groups, bias in CONV_KINDS:
      convs = [layers.Conv(features, kernel, strides, padding, dilation, groups, bias, impl=impl)
               for impl in ('fast', 'lax')]
      params = convs[0].init(jax.random.key(0), x)
      cotangent = jax.random.normal(jax.random.key(2), convs[0].apply(params, x).shape)
      results.append([(conv.apply(params, x), jax.grad(
          lambda params, x: jnp.sum(conv.apply(params, x) * cotangent), argnums=(0, 1))(params, x))
                      for conv in convs])
    return results

  for from_fast, from_lax in outputs_and_gradients():
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                 from_fast, from_lax)


def test_one_channel_stem_as_patches_product_agrees_with_lax():
  """The stem kind (5x5, stride 2, one input channel, bias): outputs, kernel and input gradients."""
  x = jax.random.normal(jax.random.key(3), (3, 12, 11, 1))
  convs = [layers.Conv(7, (5, 5), (2, 2), ((2, 2), (2, 2)), use_bias=True, impl=impl)
           for impl in ('fast', 'lax')]
  params = convs[0].init(jax.random.key(0), x)
  cotangent = jax.random.normal(jax.random.key(2), (3, 6, 6, 7))
  from_fast, from_lax = [
      jax.jit(lambda params, x, conv=conv: (conv.apply(params, x), jax.grad(
          lambda p, v: jnp.sum(conv.apply(p, v) * cotangent), argnums=(0, 1))(params, x)))(params, x)
      for conv in convs]
  assert from_fast[0].shape == (3, 6, 6, 7)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
               from_fast, from_lax)


def test_fast_and_lax_networks_agree():
  """BC-ResNet-tau uses every conv kind; same variables, same train-mode loss, statistics, logits."""
  fast, lax = (models.build_model(_config('kws_tau1', conv_impl=impl).model)
               for impl in ('fast', 'lax'))
  x = jax.random.normal(jax.random.key(1), (3, 40, 19))
  variables = jax.jit(lambda x: fast.init({'params': jax.random.key(0)}, x, train=False))(x)
  assert (jax.tree.map(jnp.shape, variables) ==
          jax.tree.map(jnp.shape, jax.eval_shape(lambda: lax.init(jax.random.key(0), x, train=False))))

  @jax.jit
  def outputs(params):
    """(loss, (train logits, batch statistics)) and eval logits of both forms."""
    return [(_train_loss(model, variables, x, jnp.arange(3))(params, jax.random.key(2)),
             model.apply({**variables, 'params': params}, x, train=False))
            for model in (fast, lax)]

  from_fast, from_lax = outputs(variables['params'])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5),
               from_fast, from_lax)


def test_every_kernel_passes_through_transform_kernel():
  models_by_impl = [models.build_model(_config('kws_tau1', conv_impl=impl).model)
                    for impl in layers.CONV_IMPLS]
  x = jax.random.normal(jax.random.key(1), (2, 40, 9))
  variables = jax.jit(lambda x: models_by_impl[0].init(jax.random.key(0), x, train=False))(x)
  doubled = jax.tree_util.tree_map_with_path(
      lambda path, leaf: 2.0 * leaf if path[-1].key == 'kernel' else leaf, variables['params'])
  seen = []

  def double_kernels(next_fun, args, kwargs, context):
    if context.method_name == 'transform_kernel':
      seen.append(context.module.path)
      return 2.0 * next_fun(*args, **kwargs)
    return next_fun(*args, **kwargs)

  @jax.jit
  def intercepted_and_direct():
    results = []
    for model in models_by_impl:
      with nn.intercept_methods(double_kernels):
        intercepted = model.apply(variables, x, train=False)
      results.append((intercepted, model.apply({**variables, 'params': doubled}, x, train=False)))
    return results

  for intercepted, direct in intercepted_and_direct():
    np.testing.assert_allclose(intercepted, direct, rtol=1e-5, atol=1e-6)
  kernels = [path for path, _ in jax.tree_util.tree_flatten_with_path(variables['params'])[0]
             if path[-1].key == 'kernel']
  assert len(seen) == len(layers.CONV_IMPLS) * len(kernels)


def test_channel_input_and_bfloat16_compute_with_float32_params_and_logits():
  model = models.build_model(_config('mod1', dtype='bfloat16').model)
  x = jax.random.normal(jax.random.key(1), (2, 32, 20))
  variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(x)
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  apply = jax.jit(lambda x: model.apply(variables, x, train=False))
  logits = apply(x)
  assert logits.dtype == jnp.float32
  np.testing.assert_array_equal(logits, apply(x[..., None]))


def _subband_reference(x, params, stats, train, sub_bands):
  """Each sub-band through its own flax BatchNorm with that band's scale, bias and statistics."""
  outputs, new_means = [], []
  reference = nn.BatchNorm(use_running_average=not train, momentum=bcresnet.BN_MOMENTUM,
                           epsilon=bcresnet.BN_EPSILON)
  for band, part in enumerate(jnp.split(x, sub_bands, axis=1)):
    variables = {'params': {'scale': params['scale'][band], 'bias': params['bias'][band]},
                 'batch_stats': {'mean': stats['mean'][band], 'var': stats['var'][band]}}
    out, updates = reference.apply(variables, part, mutable=['batch_stats'])
    outputs.append(out)
    new_means.append(updates['batch_stats']['mean'])
  return jnp.concatenate(outputs, axis=1), jnp.stack(new_means)


@pytest.mark.parametrize('train', [True, False])
def test_subspectral_norm_equals_batch_norm_per_sub_band(train):
  sub_bands, channels = 4, 3
  x = jax.random.normal(jax.random.key(0), (5, 8, 7, channels)) * 2.0 + 1.0
  keys = jax.random.split(jax.random.key(1), 4)
  params = {'scale': jax.random.uniform(keys[0], (sub_bands, channels), minval=0.5, maxval=2.0),
            'bias': jax.random.normal(keys[1], (sub_bands, channels))}
  stats = {'mean': jax.random.normal(keys[2], (sub_bands, channels)),
           'var': jax.random.uniform(keys[3], (sub_bands, channels), minval=0.5, maxval=2.0)}
  ssn = bcresnet.SubSpectralNorm(sub_bands)
  out, updates = ssn.apply({'params': {'bn': params}, 'batch_stats': {'bn': stats}}, x, train,
                           mutable=['batch_stats'])
  expected, expected_means = _subband_reference(x, params, stats, train, sub_bands)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(updates['batch_stats']['bn']['mean'], expected_means, rtol=1e-6)


def test_subspectral_norm_rejects_indivisible_frequency():
  with pytest.raises(ValueError, match='sub_bands'):
    bcresnet.SubSpectralNorm(4).init(jax.random.key(0), jnp.zeros((1, 6, 3, 2)), False)
