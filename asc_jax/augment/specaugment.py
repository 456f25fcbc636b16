"""SpecAugment masking (Park et al., 2019): frequency bands and time spans replaced per example.

Mask value: 'mean' (default) fills masked cells with the example's own mean log-mel value;
'zero' fills them with 0. On log-mels 0 is not silence (log(1) is a moderate energy, silence is
near log(1e-6) = -13.8), so 'mean' is the neutral choice: it leaves the example's level unchanged.
"""

import jax
import jax.numpy as jnp

MASK_VALUES = ('mean', 'zero')


def band_masks(key: jax.Array, batch: int, length: int, num_masks: int, max_width: int
               ) -> jax.Array:
  """Boolean [batch, length]: True inside any of `num_masks` bands per example.

  Each band has a width drawn uniformly from {0, ..., max_width} (capped at `length`) and a start
  drawn uniformly among the positions where it fits.
  """
  width_key, start_key = jax.random.split(key)
  max_width = min(max_width, length)
  widths = jax.random.randint(width_key, (batch, num_masks), 0, max_width + 1)
  room = (length - widths + 1).astype(jnp.float32)
  starts = jnp.floor(jax.random.uniform(start_key, (batch, num_masks)) * room).astype(jnp.int32)
  starts = jnp.minimum(starts, length - widths)
  positions = jnp.arange(length)
  inside = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])
  return inside.any(axis=1)


def specaugment(key: jax.Array, x: jax.Array, *, freq_masks: int, freq_mask_width: int,
                time_masks: int, time_mask_width: int, mask_value: str = 'mean') -> jax.Array:
  """Masks `freq_masks` frequency bands and `time_masks` time spans per example of x [B, F, T]."""
  if mask_value not in MASK_VALUES:
    raise ValueError(f'config.augment.specaugment_mask_value={mask_value!r} is unknown: '
                     f'use one of {MASK_VALUES}.')
  batch, freqs, frames = x.shape
  freq_key, time_key = jax.random.split(key)
  masked = (band_masks(freq_key, batch, freqs, freq_masks, freq_mask_width)[:, :, None]
            | band_masks(time_key, batch, frames, time_masks, time_mask_width)[:, None, :])
  if mask_value == 'mean':
    fill = x.astype(jnp.float32).mean(axis=(1, 2), keepdims=True).astype(x.dtype)
  else:
    fill = jnp.zeros((), x.dtype)
  return jnp.where(masked, fill, x)
