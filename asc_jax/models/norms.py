"""Parameter-free input and stage normalizations: Residual Normalization, RFN, or none.

For x laid out (N, F, T, C) (REFERENCE.md section 2):
  FreqIN(x)  = (x - mean) / sqrt(var + eps), statistics over time and channels for each example
               and each frequency bin;
  ResNorm(x) = lam * x + FreqIN(x)                       (Kim et al., DCASE2021);
  RFN(x)     = lam * LayerNorm(x) + (1 - lam) * FreqIN(x), LayerNorm over (F, T, C) without affine
                                                         (Kim et al., Interspeech 2022).
Statistics are computed in float32 whatever the compute dtype.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

NORM_KINDS = ('resnorm', 'rfn', 'none')


def standardize(x: jax.Array, axes: tuple[int, ...], eps: float) -> jax.Array:
  """(x - mean) / sqrt(var + eps) with mean and (biased) variance over `axes`, in float32."""
  x = x.astype(jnp.float32)
  mean = jnp.mean(x, axis=axes, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


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
