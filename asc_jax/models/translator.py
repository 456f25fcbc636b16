"""Device translator: a small convolutional encoder-decoder, device-A log-mels -> another device.

`DeviceTranslator` maps log-mels x [B, F, T] recorded by the source device to what target device
`device` [B] (an index into the dataset's device names) would have recorded, as x plus a
predicted residual, in log-mel units:

  output = x + scale * (unet((x - offset) / scale, device) + band_offset[device][:, :, None])

The U-Net has one level per entry of `channels` (the first at full resolution, each further one
halving frequency and time) and a mirrored decoder with skip connections; every convolution is
followed by FiLM, a per-channel scale and shift computed from a learned embedding of the target
device. `band_offset` is a learned per-device, per-mel-bin offset: the device's average frequency
response. The residual convolution and the band offsets start at zero, so an untrained translator
is the identity.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class FiLM(nn.Module):
  """Feature-wise linear modulation of x [B, F, T, C] by a conditioning vector [B, E]."""

  @nn.compact
  def __call__(self, x: jax.Array, condition: jax.Array) -> jax.Array:
    scale_shift = nn.Dense(2 * x.shape[-1], kernel_init=nn.initializers.zeros)(condition)
    scale, shift = jnp.split(scale_shift[:, None, None, :], 2, axis=-1)
    return x * (1.0 + scale) + shift


class DeviceTranslator(nn.Module):
  """Source-device log-mels [B, F, T] -> target-device log-mels [B, F, T] (see module docstring).

  Attributes:
    num_devices: size of the device vocabulary (the dataset's device names).
    num_mels: F, the number of mel bins (for the per-device band offsets).
    channels: channels of each U-Net level; level i > 0 works at 1 / 2**i resolution.
    embed_dim: size of the learned target-device embedding that drives FiLM.
    offset, scale: input normalization (mean and standard deviation of source log-mels).
  """
  num_devices: int
  num_mels: int
  channels: Sequence[int] = (16, 32, 32)
  embed_dim: int = 16
  offset: float = 0.0
  scale: float = 1.0

  def _conv_film(self, x: jax.Array, features: int, strides: int, condition: jax.Array
                 ) -> jax.Array:
    x = nn.Conv(features, (3, 3), strides=(strides, strides), padding='SAME')(x)
    return nn.relu(FiLM()(x, condition))

  @nn.compact
  def __call__(self, x: jax.Array, device: jax.Array) -> jax.Array:
    if x.ndim != 3 or x.shape[1] != self.num_mels:
      raise ValueError(f'DeviceTranslator expects log-mels [B, {self.num_mels}, T], got '
                       f'{x.shape}: use the front end the translator was trained with.')
    condition = nn.Embed(self.num_devices, self.embed_dim)(device)
    hidden = ((x.astype(jnp.float32) - self.offset) / self.scale)[..., None]
    skips = []
    for level, features in enumerate(self.channels):
      hidden = self._conv_film(hidden, features, 1 if level == 0 else 2, condition)
      skips.append(hidden)
    for features, skip in zip(reversed(self.channels[:-1]), reversed(skips[:-1])):
      hidden = jax.image.resize(hidden, skip.shape[:3] + hidden.shape[-1:], 'nearest')
      hidden = self._conv_film(jnp.concatenate([hidden, skip], axis=-1), features, 1, condition)
    residual = nn.Conv(1, (1, 1), kernel_init=nn.initializers.zeros)(hidden)[..., 0]
    band_offset = nn.Embed(self.num_devices, self.num_mels, embedding_init=nn.initializers.zeros,
                           name='band_offset')(device)
    return x + self.scale * (residual + band_offset[:, :, None]).astype(x.dtype)
