"""int8 fake quantization: kernel and activation round trips, straight-through gradients, both
convolution forms quantized alike, calibration of every convolution input."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from asc_jax import complexity
from asc_jax import defaults
from asc_jax import models
from asc_jax.compress import quantization

INPUT_SHAPE = (32, 24)


def test_kernel_round_trip_is_within_half_a_step_per_channel():
  kernel = np.array(jax.random.normal(jax.random.key(0), (3, 1, 4, 6)), np.float32)
  kernel[..., 2] *= 100.0          # channels of very different ranges keep their own scale
  kernel[0, 0, 0, 1] = 0.0
  values, scale = quantization.quantize_kernel(kernel)
  assert values.dtype == jnp.int8 and values.shape == kernel.shape
  assert scale.dtype == jnp.float16 and scale.shape == (6,)
  np.testing.assert_allclose(np.asarray(scale, np.float32),
                             np.abs(kernel).max(axis=(0, 1, 2)) / 127.5, rtol=1e-3)
  restored = np.asarray(values, np.float32) * np.asarray(scale, np.float32)
  # half a step, plus what rounding the scale to float16 moves (at most 128 * 2^-11 steps)
  assert np.all(np.abs(restored - kernel) <= 0.57 * np.asarray(scale, np.float32))
  assert values[0, 0, 0, 1] == 0 and int(np.abs(np.asarray(values, np.int32)).max()) >= 127


def test_activation_quantization_rounds_half_to_even_and_clips():
  scale = quantization.scale_from_absmax(2.55)
  assert scale == pytest.approx(0.02)
  x = jnp.array([0.01, 0.03, -0.05, 3.0, -3.0, 0.0]) * 1.0
  q = quantization.quantize_activation(x, scale)
  np.testing.assert_array_equal(np.asarray(q), [0, 2, -2, 127, -128, 0])
  assert quantization.scale_from_absmax(0.0) == 1.0


def test_straight_through_gradients_are_the_identity():
  kernel = jax.random.normal(jax.random.key(1), (1, 1, 5, 3))
  weights = jax.random.normal(jax.random.key(2), kernel.shape)
  grad = jax.grad(lambda k: jnp.sum(quantization.fake_quantize_kernel(k) * weights))(kernel)
  np.testing.assert_allclose(grad, weights, rtol=1e-6)
  x = jax.random.normal(jax.random.key(3), (7,))
  grad_x = jax.grad(lambda v: jnp.sum(quantization.fake_quantize_activation(v, 0.01) ** 2))(x)
  np.testing.assert_allclose(grad_x, 2 * quantization.fake_quantize_activation(x, 0.01), rtol=1e-5)


def model_config(conv_impl: str) -> ml_collections.ConfigDict:
  config = defaults.bcresnet_mod_model(1)
  config.conv_impl = conv_impl
  return config


@pytest.fixture(scope='module')
def tiny_model_and_data():
  model = models.build_model(model_config('fast'))
  x = jax.random.normal(jax.random.key(4), (4, *INPUT_SHAPE)) * 3.0 - 5.0
  variables = jax.jit(lambda x: model.init({'params': jax.random.key(0)}, x, train=False))(x[:1])
  return model, variables, x


def test_calibration_gives_a_scale_to_every_convolution(tiny_model_and_data):
  model, variables, x = tiny_model_and_data
  scales = quantization.calibrate_activation_scales(model, variables, [x[:2], x[2:]])
  convs = {call.path for call in complexity.trace_layers(model, INPUT_SHAPE) if call.kind == 'conv'}
  assert set(scales) == convs
  assert all(value > 0 for value in scales.values())
  one_batch = quantization.calibrate_activation_scales(model, variables, [x[:2]])
  assert all(scales[path] >= one_batch[path] for path in scales)   # max over batches


def test_fast_and_lax_forms_quantize_identically(tiny_model_and_data):
  model, variables, x = tiny_model_and_data
  scales = quantization.calibrate_activation_scales(model, variables, [x])
  outputs = {}
  for impl in ('fast', 'lax'):
    quantized = quantization.QuantizedModel(models.build_model(model_config(impl)), scales)
    outputs[impl] = np.asarray(jax.jit(functools.partial(quantized.apply, train=False))(
        variables, x))
  np.testing.assert_allclose(outputs['fast'], outputs['lax'], atol=1e-5)
  float_logits = np.asarray(jax.jit(functools.partial(model.apply, train=False))(variables, x))
  assert 0 < np.abs(outputs['fast'] - float_logits).max() < 0.1 * np.abs(float_logits).max() + 0.1


def test_quantization_aware_training_has_gradients_for_every_kernel(tiny_model_and_data):
  model, variables, x = tiny_model_and_data
  scales = quantization.calibrate_activation_scales(model, variables, [x])
  quantized = quantization.QuantizedModel(model, scales)

  def loss(params):
    logits, _ = quantized.apply({'params': params, 'batch_stats': variables['batch_stats']}, x,
                                train=True, rngs={'dropout': jax.random.key(5)},
                                mutable=['batch_stats'])
    return jnp.mean(jax.nn.log_softmax(logits)[:, 0])

  grads = jax.jit(jax.grad(loss))(variables['params'])
  kernels = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]
             if path[-1].key == 'kernel']
  assert len(kernels) == 33 and all(float(jnp.abs(g).max()) > 0 for g in kernels)
