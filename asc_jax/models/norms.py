"""Parameter-free input and stage normalizations: Residual Normalization, RFN, or none.

For x laid out (N, F, T, C) (docs/method.md section 2):
  FreqIN(x)  = (x - mean) / sqrt(var + eps), statistics over time and channels for each example
               and each frequency bin;
  ResNorm(x) = lam * x + FreqIN(x)                       (Kim et al., DCASE2021);
  RFN(x)     = lam * LayerNorm(x) + (1 - lam) * FreqIN(x), LayerNorm over (F, T, C) without affine
                                                         (Kim et al., Interspeech 2022).
Statistics are computed in float32 whatever the compute dtype, in two passes (mean, then the mean
of squared deviations: no E[x^2] - E[x]^2 cancellation). `standardize` has a hand-written
gradient, rstd * (g - mean(g) - xhat * mean(g * xhat)), the exact derivative of the
standardization, which XLA's CPU backend runs in fewer passes over the activations than the
automatic derivative of the two-pass formula.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

NORM_KINDS = ('resnorm', 'rfn', 'none')


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def standardize(x: jax.Array, axes: tuple[int, ...], eps: float) -> jax.Array:
  """(x - mean) / sqrt(var + eps) with mean and (biased) variance over `axes`, in float32."""
  return _standardize_fwd(x, axes, eps)[0]


def _standardize_fwd(x, axes, eps):
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=axes, keepdims=True)
  rstd = jax.lax.rsqrt(jnp.mean(jnp.square(x32 - mean), axis=axes, keepdims=True) + eps)
  return (x32 - mean) * rstd, (x, mean, rstd)


def _standardize_bwd(axes, eps, residuals, cotangent):
  del eps
  x, mean, rstd = residuals
  g = cotangent.astype(jnp.float32)
  xhat = (x.astype(jnp.float32) - mean) * rstd
  g_mean = jnp.mean(g, axis=axes, keepdims=True)
  g_xhat_mean = jnp.mean(g * xhat, axis=axes, keepdims=True)
  return ((rstd * (g - g_mean - xhat * g_xhat_mean)).astype(x.dtype),)


standardize.defvjp(_standardize_fwd, _standardize_bwd)


def freq_instance_norm(x: jax.Array, eps: float) -> jax.Array:
  """FreqIN over (N, F, T, C): per example and frequency bin, over time and channels."""
  return standardize(x, (2, 3), eps)


def residual_norm(x: jax.Array, lam: float, eps: float) -> jax.Array:
  return (lam * x.astype(jnp.float32) + freq_instance_norm(x, eps)).astype(x.dtype)


def relaxed_freq_norm(x: jax.Array, lam: float, eps: float) -> jax.Array:
  layer_norm = standardize(x, (1, 2, 3), eps)
  return (lam * layer_norm + (1.0 - lam) * freq_instance_norm(x, eps)).astype(x.dtype)


class FrequencyNorm(nn.Module):
  """One of NORM_KINDS applied to (N, F, T, C); no parameters."""
  kind: str = 'resnorm'
  lam: float = 0.1
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.kind == 'resnorm':
      return residual_norm(x, self.lam, self.eps)
    if self.kind == 'rfn':
      return relaxed_freq_norm(x, self.lam, self.eps)
    if self.kind == 'none':
      return x
    raise ValueError(f'model config key norm={self.kind!r} is unknown; '
                     f'choose one of {", ".join(NORM_KINDS)}.')
