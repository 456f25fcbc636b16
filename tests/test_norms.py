"""ResNorm, RFN and 'none' against their formulas (docs/method.md section 2); the standardization
kernel's gradient against automatic differentiation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asc_jax.models import norms

EPS = 1e-5


def _spectrogram(shape=(3, 6, 11, 4)):
  """Values whose mean and spread differ per frequency bin, as in real log-mels."""
  key_scale, key_noise = jax.random.split(jax.random.key(0))
  scale = jax.random.uniform(key_scale, (1, shape[1], 1, 1), minval=0.5, maxval=5.0)
  offset = jnp.arange(shape[1], dtype=jnp.float32).reshape(1, -1, 1, 1) * 3.0
  return offset + scale * jax.random.normal(key_noise, shape)


def _freq_in_numpy(x):
  mean = x.mean(axis=(2, 3), keepdims=True)
  var = x.var(axis=(2, 3), keepdims=True)
  return (x - mean) / np.sqrt(var + EPS)


def test_resnorm_with_zero_lambda_standardizes_each_frequency_bin_of_each_example():
  x = _spectrogram()
  y = np.asarray(norms.FrequencyNorm('resnorm', lam=0.0, eps=EPS).apply({}, x))
  np.testing.assert_allclose(y.mean(axis=(2, 3)), 0.0, atol=1e-5)
  np.testing.assert_allclose(y.var(axis=(2, 3)), 1.0, atol=1e-3)


def test_resnorm_adds_lambda_times_input():
  x = _spectrogram()
  y = norms.FrequencyNorm('resnorm', lam=0.1, eps=EPS).apply({}, x)
  expected = 0.1 * np.asarray(x) + _freq_in_numpy(np.asarray(x))
  np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)


def test_rfn_mixes_layer_norm_and_frequency_instance_norm():
  x = np.asarray(_spectrogram())
  y = norms.FrequencyNorm('rfn', lam=0.3, eps=EPS).apply({}, x)
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  layer_norm = (x - mean) / np.sqrt(x.var(axis=(1, 2, 3), keepdims=True) + EPS)
  expected = 0.3 * layer_norm + 0.7 * _freq_in_numpy(x)
  np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)


def test_none_is_identity_and_dtype_is_kept():
  x = _spectrogram().astype(jnp.bfloat16)
  assert norms.FrequencyNorm('none').apply({}, x) is x
  assert norms.FrequencyNorm('resnorm').apply({}, x).dtype == jnp.bfloat16


def test_unknown_kind_names_the_config_key():
  with pytest.raises(ValueError, match='norm='):
    norms.FrequencyNorm('batch').apply({}, _spectrogram())


def _naive_standardize(x, axes):
  mean = jnp.mean(x, axis=axes, keepdims=True)
  return (x - mean) / jnp.sqrt(jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True) + EPS)


@pytest.mark.parametrize('axes', [(2, 3), (1, 2, 3), (0, 2)])
def test_standardize_gradient_equals_autodiff_of_the_formula(axes):
  x = _spectrogram()
  cotangent = jax.random.normal(jax.random.key(3), x.shape)
  grad, expected = (jax.grad(lambda x: jnp.sum(f(x) * cotangent))(x) for f in
                    (lambda x: norms.standardize(x, axes, EPS), lambda x: _naive_standardize(x, axes)))
  np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)


def test_standardize_keeps_float32_precision_with_a_large_offset():
  """Two-pass statistics: with an offset of 1e4 over unit-scale noise, E[x^2] - E[x]^2 in float32
  is off by O(1); the two-pass result is off only by the float32 rounding of the mean."""
  x = np.asarray(_spectrogram()) + np.float32(1e4)
  y = norms.standardize(jnp.asarray(x), (2, 3), EPS)
  np.testing.assert_allclose(y, _freq_in_numpy(x.astype(np.float64)), atol=5e-3)

