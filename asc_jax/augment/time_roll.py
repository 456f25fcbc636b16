"""Random circular shift along time, drawn per example."""

import jax
import jax.numpy as jnp


def time_roll(key: jax.Array, x: jax.Array, max_shift: int) -> jax.Array:
  """Rolls each example of x [B, F, T] along time by its own shift in {-max_shift, ..., max_shift}.

  Matches np.roll(x[b], shift_b, axis=-1): frames leaving one end re-enter at the other.
  """
  batch, _, frames = x.shape
  shifts = jax.random.randint(key, (batch,), -max_shift, max_shift + 1)
  source_frames = (jnp.arange(frames)[None, :] - shifts[:, None]) % frames
  return jnp.take_along_axis(x, source_frames[:, None, :], axis=2)
