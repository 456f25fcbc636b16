"""Freq-MixStyle (Schmid et al., CP-JKU, DCASE2022/2023): mixes frequency-wise statistics.

Each example is normalized with its own per-frequency mean and standard deviation (taken over
time and any further axes) and re-scaled with statistics interpolated between itself and a random
partner: the spectral envelope (device colouring) changes while the time structure stays. As in
the published method the augmentation is switched on for a whole batch with probability p, and
the mixing weight lam ~ Beta(alpha, alpha) is drawn per example.
"""

import jax
import jax.numpy as jnp

from asc_jax import parallel


def mix_frequency_statistics(x: jax.Array, lam: jax.Array, perm: jax.Array, eps: float
                             ) -> jax.Array:
  """x [B, F, ...] re-scaled to statistics lam * stats_i + (1 - lam) * stats_perm[i].

  For each example i and frequency f, the output has mean lam_i * mu_if + (1 - lam_i) * mu_jf and
  standard deviation lam_i * sigma_if + (1 - lam_i) * sigma_jf (times sqrt(var / (var + eps))),
  where j = perm[i] and sigma = sqrt(var + eps).
  """
  values = x.astype(jnp.float32)
  axes = tuple(range(2, x.ndim))
  mean = values.mean(axis=axes, keepdims=True)
  std = jnp.sqrt(values.var(axis=axes, keepdims=True) + eps)
  weight = lam.astype(jnp.float32).reshape((-1,) + (1,) * (x.ndim - 1))
  mixed_mean = weight * mean + (1 - weight) * mean[perm]
  mixed_std = weight * std + (1 - weight) * std[perm]
  return ((values - mean) / std * mixed_std + mixed_mean).astype(x.dtype)


def freq_mixstyle(key: jax.Array, x: jax.Array, *, p: float, alpha: float, eps: float = 1e-6
                  ) -> jax.Array:
  """With probability p, x [B, F, ...] with per-frequency statistics mixed between examples."""
  apply_key, lam_key, perm_key = jax.random.split(key, 3)
  batch = x.shape[0]
  lam = parallel.replicated_draw(jax.random.beta(lam_key, alpha, alpha, (batch,), jnp.float32))
  perm = jax.random.permutation(perm_key, batch)
  mixed = mix_frequency_statistics(x, lam, perm, eps)
  return jnp.where(jax.random.uniform(apply_key) < p, mixed, x)
