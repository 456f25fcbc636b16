"""FilterAugment (Nam et al., ICASSP 2022): a random frequency response on log-mel power.

A microphone colours a recording with a smooth frequency response; FilterAugment draws one per
example and applies it, so the network cannot lean on one device's spectral envelope. The mel
axis is cut at random boundaries into n bands, n ~ U{min_bands..max_bands}; the two ends and
every boundary get a gain ~ U[-db_range, db_range] dB. The 'linear' filter (the paper's default)
interpolates the gains linearly between those knots; the 'step' filter holds each band at the
gain of its lower knot. On log(mel power) a gain of g dB adds g * ln(10) / 10 nats (exact where
the power is well above the front end's log offset). Each example is filtered with probability
p. Unlike impulse-response augmentation it needs no recorded responses.
"""

import math

import jax
import jax.numpy as jnp

NATS_PER_DB = math.log(10.0) / 10.0
KINDS = ('linear', 'step')


def gain_curves(key: jax.Array, batch: int, freqs: int, *, db_range: float, min_bands: int,
                max_bands: int, kind: str) -> jax.Array:
  """Random frequency responses in dB, [batch, freqs], one per example."""
  if kind not in KINDS:
    raise ValueError(f'config.augment.filter_augment_type={kind!r} is unknown: choose one of '
                     f'{", ".join(KINDS)}.')
  if not 1 <= min_bands <= max_bands:
    raise ValueError(f'config.augment.filter_augment_min_bands={min_bands} and _max_bands='
                     f'{max_bands} need 1 <= min_bands <= max_bands.')
  count_key, edge_key, gain_key = jax.random.split(key, 3)
  bands = jax.random.randint(count_key, (batch, 1), min_bands, max_bands + 1)
  # max_bands - 1 candidate boundaries; an example with n bands keeps n - 1 of them, the others
  # move to the top bin, so after sorting the kept ones come first.
  kept = jnp.arange(max_bands - 1)[None, :] < bands - 1
  top = float(freqs - 1)
  edges = jnp.sort(jnp.where(kept, jax.random.uniform(edge_key, (batch, max_bands - 1),
                                                      minval=0.0, maxval=top), top), axis=1)
  gains = jax.random.uniform(gain_key, (batch, max_bands + 1), minval=-db_range,
                             maxval=db_range)
  grid = jnp.arange(freqs, dtype=jnp.float32)
  if kind == 'step':
    band_of_bin = (kept[:, None, :] & (edges[:, None, :] <= grid[None, :, None])).sum(-1)
    return jnp.take_along_axis(gains, band_of_bin, axis=1)
  # Knots at the bottom, the kept boundaries and the top; a dropped boundary sits on the top knot
  # with the top gain, so it changes nothing.
  knots = jnp.concatenate([jnp.zeros((batch, 1)), edges, jnp.full((batch, 1), top)], axis=1)
  knot_gains = jnp.concatenate(
      [gains[:, :1], jnp.where(kept, gains[:, 1:-1], gains[:, -1:]), gains[:, -1:]], axis=1)
  return jax.vmap(jnp.interp, in_axes=(None, 0, 0))(grid, knots, knot_gains)


def filter_augment(key: jax.Array, x: jax.Array, *, p: float, db_range: float, min_bands: int,
                   max_bands: int, kind: str) -> jax.Array:
  """x [B, F, ...] (log-mel power) with a random frequency response on each example w.p. p."""
  apply_key, curve_key = jax.random.split(key)
  batch, freqs = x.shape[:2]
  curves = gain_curves(curve_key, batch, freqs, db_range=db_range, min_bands=min_bands,
                       max_bands=max_bands, kind=kind)
  applied = jax.random.uniform(apply_key, (batch, 1)) < p
  offsets = jnp.where(applied, curves * NATS_PER_DB, 0.0)
  offsets = offsets.reshape(offsets.shape + (1,) * (x.ndim - 2))
  return (x.astype(jnp.float32) + offsets).astype(x.dtype)
