"""MaxPool: values of a 2x2 max, and a gradient that goes to one argmax per window, finite
under jit even where the pooled input is recomputed inside fusions (the NaN it once produced)."""

import jax
import jax.numpy as jnp
import numpy as np

from asc_jax.models import layers
from asc_jax.models import norms


def test_maxpool_values_and_gradient_to_first_argmax():
  x = jnp.array([[1., 3., 3., 0.], [2., 3., -1., -2.], [5., 5., 5., 5.], [0., 0., 0., 9.]])
  x = x[None, :, :, None]
  pool = layers.MaxPool((2, 2))
  np.testing.assert_array_equal(pool.apply({}, x)[0, :, :, 0], [[3., 3.], [5., 9.]])
  grad = jax.grad(lambda v: pool.apply({}, v).sum())(x)[0, :, :, 0]
  expected = np.zeros((4, 4))
  expected[0, 1] = expected[0, 2] = expected[2, 0] = expected[3, 3] = 1.0   # first maximum wins ties
  np.testing.assert_array_equal(grad, expected)


def test_maxpool_after_resnorm_has_finite_gradients_under_jit():
  key = jax.random.key(0)
  x = jax.random.normal(key, (8, 16, 14, 6)) * 0.01 - 13.8   # near-constant log-mel floor
  def loss(v):
    y = norms.residual_norm(v, 0.1, 1e-5)
    return jnp.sum(layers.MaxPool((2, 2)).apply({}, y) ** 2)
  grad = jax.jit(jax.grad(loss))(x)
  assert np.all(np.isfinite(np.asarray(grad)))
  assert np.count_nonzero(np.asarray(grad)) > 0
