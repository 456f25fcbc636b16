"""asc_jax's BC-ResNet-Mod starts where the PyTorch reference starts: PyTorch's default
initialisation of every convolution (kernel and bias) and PyTorch's BatchNorm update.

The reference (torch_bcresnet_mod.py, not in this repository) keeps PyTorch's defaults: Conv2d kernels
and biases U(+-1/sqrt(fan_in)), fan_in = in / groups x k_h x k_w; BatchNorm2d momentum 0.1
(running = 0.9 running + 0.1 batch), eps 1e-5, scale 1, bias 0.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asc_jax import defaults
from asc_jax.models import bcresnet
from asc_jax.models import build_model


def init_params(seed: int = 0, **overrides) -> dict:
  config = defaults.bcresnet_mod_model(2)
  config.update(overrides)
  variables = build_model(config).init({'params': jax.random.PRNGKey(seed)},
                                       jnp.zeros((1, 32, 40)), train=False)
  return variables


def convolutions(params: dict, prefix: str = ''):
  """(path, module params) of every convolution (a dict holding a 4-D 'kernel')."""
  for name, value in params.items():
    if isinstance(value, dict) and 'kernel' in value and np.ndim(value['kernel']) == 4:
      yield prefix + name, value
    elif isinstance(value, dict):
      yield from convolutions(value, f'{prefix}{name}/')


def test_every_convolution_starts_from_pytorchs_default_distribution():
  params = init_params()['params']
  kernels = np.concatenate([
      np.asarray(conv['kernel']).ravel() * np.sqrt(np.prod(conv['kernel'].shape[:3]))
      for _, conv in convolutions(params)])
  # kernel * sqrt(fan_in) ~ U(-1, 1): bounded by 1, standard deviation 1/sqrt(3).
  assert np.abs(kernels).max() <= 1.0
  assert np.std(kernels) == pytest.approx(1 / np.sqrt(3), rel=0.03)
  for path, conv in convolutions(params):
    fan_in = int(np.prod(conv['kernel'].shape[:3]))
    assert np.abs(conv['kernel']).max() <= 1 / np.sqrt(fan_in) + 1e-7, path
    if conv['kernel'].size >= 400:
      assert np.std(conv['kernel']) * np.sqrt(3 * fan_in) == pytest.approx(1.0, rel=0.15), path


def test_stem_and_head_biases_follow_bias_init():
  params = init_params()['params']
  biases = {path: np.asarray(conv['bias']) for path, conv in convolutions(params)
            if 'bias' in conv}
  assert set(biases) == {'stem', 'head'}
  for path, bias in biases.items():
    fan_in = int(np.prod(params[path]['kernel'].shape[:3]))   # stem 25, head 2.5 x 20 = 50
    assert np.abs(bias).max() <= 1 / np.sqrt(fan_in)
    assert np.abs(bias).max() > 0.2 / np.sqrt(fan_in) and len(np.unique(bias)) == bias.size
  zeros = init_params(bias_init='zeros')['params']
  assert all(not np.any(zeros[path]['bias']) for path in biases)
  with pytest.raises(ValueError, match='bias_init'):
    init_params(bias_init='normal')


def test_seeds_change_the_weights_not_their_distribution():
  first, second = (np.asarray(init_params(seed)['params']['stage2_block0']['point_conv']['kernel'])
                   for seed in (0, 1))
  assert not np.allclose(first, second)
  assert float(np.std(first)) == pytest.approx(float(np.std(second)), rel=0.1)


def test_batch_norm_updates_like_pytorch_momentum_0_1():
  """A train-mode step of SubSpectralNorm: batch statistics per (sub-band, channel), eps 1e-5,
  running = 0.9 running + 0.1 batch (PyTorch keeps the unbiased variance: factor n / (n-1))."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((4, 8, 6, 3)) * 3.0 + 5.0, jnp.float32)
  norm = bcresnet.SubSpectralNorm(sub_bands=2)
  variables = norm.init(jax.random.PRNGKey(0), x, train=False)
  assert jax.tree_util.tree_map(np.shape, variables['batch_stats']) == {
      'bn': {'mean': (2, 3), 'var': (2, 3)}}
  out, updates = norm.apply(variables, x, train=True, mutable=['batch_stats'])
  bands = np.asarray(x).reshape(4, 2, 4, 6, 3)
  mean, var = bands.mean(axis=(0, 2, 3)), bands.var(axis=(0, 2, 3))
  expected = (bands - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
  np.testing.assert_allclose(np.asarray(out), expected.reshape(x.shape), atol=2e-5)
  stats = updates['batch_stats']['bn']
  np.testing.assert_allclose(stats['mean'], 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(stats['var'], 0.9 + 0.1 * var, rtol=1e-5)
  config = defaults.bcresnet_mod_model(2)
  assert (config.bn_momentum, config.bn_epsilon) == (0.9, 1e-5)
  slower = bcresnet.SubSpectralNorm(sub_bands=2, bn_momentum=0.99, bn_epsilon=1e-3)
  _, updates = slower.apply(variables, x, train=True, mutable=['batch_stats'])
  np.testing.assert_allclose(updates['batch_stats']['bn']['mean'], 0.01 * mean, rtol=1e-5)
