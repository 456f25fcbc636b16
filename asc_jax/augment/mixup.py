"""mixup (Zhang et al., 2018): one weight per example, applied to inputs and all targets alike."""

from typing import Any

import jax
import jax.numpy as jnp

from asc_jax import parallel


def mixup(key: jax.Array, x: jax.Array, targets: Any, alpha: float
          ) -> tuple[jax.Array, Any, jax.Array, jax.Array]:
  """Mixes every example with a randomly chosen partner from the same batch.

  Example i becomes lam_i * x_i + (1 - lam_i) * x_perm[i], with lam_i ~ Beta(alpha, alpha) drawn
  per example. Every array in `targets` (a pytree of [B, K] soft targets: one-hot labels, teacher
  probabilities, ...) is mixed with the same weights and partners, so labels and teacher targets
  stay consistent with the mixed input.

  Args:
    key: PRNG key; the same key gives the same weights and partners.
    x: inputs [B, ...].
    targets: pytree of arrays [B, K].
    alpha: Beta concentration, > 0.

  Returns:
    (mixed inputs, mixed targets, lam [B] float32, partner indices perm [B] int32).
  """
  lam_key, perm_key = jax.random.split(key)
  batch = x.shape[0]
  lam = parallel.replicated_draw(jax.random.beta(lam_key, alpha, alpha, (batch,), jnp.float32))
  perm = jax.random.permutation(perm_key, batch).astype(jnp.int32)

  def mix(array: jax.Array) -> jax.Array:
    weight = lam.reshape((batch,) + (1,) * (array.ndim - 1))
    mixed = weight * array.astype(jnp.float32) + (1 - weight) * array[perm].astype(jnp.float32)
    return mixed.astype(array.dtype)

  return mix(x), jax.tree.map(mix, targets), lam, perm
