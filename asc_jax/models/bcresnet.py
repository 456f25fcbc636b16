"""BC-ResNet (keyword-spotting topology) and BC-ResNet-Mod (ASC network), docs/method.md section 3.

Layout NHWC = (N, F, T, C): frequency is the height axis, time the width axis.
The defaults follow the PyTorch reference (torch_bcresnet_mod.py, not in this repository, and the
official BC-ResNet code, which keep PyTorch's defaults): conv kernels U(+-1/sqrt(fan_in)),
biases of the stem and head convolutions U(+-1/sqrt(fan_in)) (bias_init='torch'; 'zeros' is
Flax's habit), BatchNorm momentum 0.1 in PyTorch's convention (bn_momentum=0.9 in Flax's:
running = momentum * running + (1 - momentum) * batch), eps 1e-5, batch statistics when
train=True. Flax keeps the biased batch variance in its running average where PyTorch keeps
the unbiased one (a factor n/(n-1), n = examples x positions: negligible here). With the same
weights, both networks compute the same logits in train and eval mode (tests/test_reference_init.py
checks the initial statistics and BatchNorm's update). Under a data-parallel jit the batch
statistics are those of the global batch.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from asc_jax.models import layers
from asc_jax.models import norms

BN_MOMENTUM = 0.9   # flax convention: running = momentum * running + (1 - momentum) * batch.
BN_EPSILON = 1e-5


def batch_norm(train: bool, dtype: Any, momentum: float = BN_MOMENTUM,
               epsilon: float = BN_EPSILON, **kwargs) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=epsilon,
                      dtype=dtype, **kwargs)


class SubSpectralNorm(nn.Module):
  """BatchNorm of each (sub-band, channel) pair on its own: F is split into `sub_bands` equal bands.

  Scale, bias and running statistics have shape (sub_bands, C), as many as the official
  BatchNorm2d(C * S); the official flat index is c * S + s.
  """
  sub_bands: int
  dtype: Any = jnp.float32
  bn_momentum: float = BN_MOMENTUM
  bn_epsilon: float = BN_EPSILON

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    n, f, t, c = x.shape
    if f % self.sub_bands:
      raise ValueError(f'{self.name}: {f} frequency bins cannot be split into '
                       f'{self.sub_bands} sub-bands (model config key sub_bands); use a number of '
                       'mel bins that stays divisible by it after every frequency stride.')
    bands = x.reshape(n, self.sub_bands, f // self.sub_bands, t, c)
    bands = batch_norm(train, self.dtype, self.bn_momentum, self.bn_epsilon, axis=(1, 4),
                       name='bn')(bands)
    return bands.reshape(n, f, t, c)


class BCResBlock(nn.Module):
  """Broadcasted residual block; a transition block when the channel count changes.

  f2: [1x1 conv + BN + ReLU if transition] -> depthwise 3x1 conv (frequency stride) -> SubSpectralNorm
  = aux; f1: mean over frequency -> depthwise 1x3 conv (time dilation) -> BN -> SiLU -> 1x1 conv ->
  channel dropout; out = ReLU(f1 broadcast over frequency + aux [+ input if not transition]).
  """
  features: int
  sub_bands: int
  freq_stride: int = 1
  dilation: int = 1
  dropout_rate: float = 0.1
  dtype: Any = jnp.float32
  conv_impl: str = 'fast'
  bn_momentum: float = BN_MOMENTUM
  bn_epsilon: float = BN_EPSILON

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = functools.partial(layers.Conv, dtype=self.dtype, impl=self.conv_impl)
    norm = functools.partial(batch_norm, train, self.dtype, self.bn_momentum, self.bn_epsilon)
    transition = x.shape[-1] != self.features
    if not transition and self.freq_stride != 1:
      raise ValueError(f'{self.name}: a frequency stride needs a transition block (channels change).')
    shortcut = x
    if transition:
      x = conv(self.features, (1, 1), name='pre_conv')(x)
      x = nn.relu(norm(name='pre_bn')(x))
    aux = conv(self.features, (3, 1), strides=(self.freq_stride, 1), padding=((1, 1), (0, 0)),
               groups=self.features, name='freq_conv')(x)
    aux = SubSpectralNorm(self.sub_bands, self.dtype, self.bn_momentum, self.bn_epsilon,
                          name='ssn')(aux, train)
    y = jnp.mean(aux, axis=1, keepdims=True)
    d = self.dilation
    y = conv(self.features, (1, 3), padding=((0, 0), (d, d)), dilation=(1, d),
             groups=self.features, name='time_conv')(y)
    y = nn.silu(norm(name='time_bn')(y))
    y = conv(self.features, (1, 1), name='point_conv')(y)
    y = nn.Dropout(self.dropout_rate, broadcast_dims=(1, 2), deterministic=not train)(y)
    out = aux + y
    if not transition:
      out = out + shortcut
    return nn.relu(out)


def as_nhwc(x: jax.Array) -> jax.Array:
  """[N, F, T] or [N, F, T, 1] log-mels -> [N, F, T, 1]."""
  if x.ndim == 3:
    return x[..., None]
  if x.ndim == 4 and x.shape[-1] == 1:
    return x
  raise ValueError(f'model input has shape {x.shape}; expected [batch, mel bins, frames] '
                   'or [batch, mel bins, frames, 1].')


class _Network(nn.Module):
  """Fields and helpers shared by both topologies (build them through asc_jax.models)."""
  width: float = 8.0
  num_classes: int = 10
  norm: str = 'resnorm'
  norm_lambda: float = 0.1
  norm_eps: float = 1e-5
  sub_bands: int = 4
  dropout_rate: float = 0.1
  dtype: Any = jnp.float32
  conv_impl: str = 'fast'
  bias_init: str = 'torch'        # of the convolutions with a bias: torch | zeros.
  bn_momentum: float = BN_MOMENTUM
  bn_epsilon: float = BN_EPSILON

  def conv(self, *args, **kwargs) -> layers.Conv:
    return layers.Conv(*args, dtype=self.dtype, impl=self.conv_impl, bias_init=self.bias_init,
                       **kwargs)

  def batch_norm(self, train: bool, **kwargs) -> nn.BatchNorm:
    return batch_norm(train, self.dtype, self.bn_momentum, self.bn_epsilon, **kwargs)

  def block(self, features: int, name: str, **kwargs) -> BCResBlock:
    return BCResBlock(features, self.sub_bands, dropout_rate=self.dropout_rate, dtype=self.dtype,
                      conv_impl=self.conv_impl, bn_momentum=self.bn_momentum,
                      bn_epsilon=self.bn_epsilon, name=name, **kwargs)

  def freq_norm(self, name: str) -> norms.FrequencyNorm:
    return norms.FrequencyNorm(self.norm, self.norm_lambda, self.norm_eps, name=name)


class BCResNetMod(_Network):
  """BC-ResNet-Mod-k: base c = 10k; ResNorm at the input and after each of the four stages.

  ResNorm -> 5x5 conv 1->2c stride 2 (bias) -> stage 1 [T(2c->c), N] -> ResNorm -> max-pool 2x2
  -> stage 2 [T(c->1.5c), N] -> ResNorm -> max-pool 2x2 -> stage 3 [T(1.5c->2c), N] -> ResNorm
  -> stage 4 [T(2c->2.5c), N, N] -> ResNorm -> 1x1 conv to classes (bias) -> global average pool.
  """

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    c = int(10 * self.width)
    stages = ((c, 2), (int(1.5 * c), 2), (2 * c, 2), (int(2.5 * c), 3))
    x = self.freq_norm('input_norm')(as_nhwc(x))
    x = self.conv(2 * c, (5, 5), strides=(2, 2), padding=((2, 2), (2, 2)), use_bias=True,
                  name='stem')(x)
    for stage, (features, num_blocks) in enumerate(stages, start=1):
      for index in range(num_blocks):
        x = self.block(features, f'stage{stage}_block{index}')(x, train)
      x = self.freq_norm(f'stage{stage}_norm')(x)
      if stage <= 2:
        x = layers.MaxPool((2, 2), name=f'stage{stage}_pool')(x)
    x = self.conv(self.num_classes, (1, 1), use_bias=True, name='head')(x)
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


class BCResNet(_Network):
  """BC-ResNet-tau (keyword spotting): base b = 8 tau, stages [2, 2, 4, 4] with b, 1.5b, 2b, 2.5b.

  5x5 conv 1->2b stride (2, 1) + BN + ReLU; frequency stride 2 in the first block of stages 2 and 3;
  time dilation 1, 2, 4, 8; head: depthwise 5x5 (no frequency padding) + 1x1 conv to 4b + BN + ReLU
  + global average pool + 1x1 conv to classes (bias). `norm` (ResNorm / RFN) is applied at the input
  and after each stage like in BC-ResNet-Mod; the keyword-spotting configs set it to 'none'.
  """

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    b = int(8 * self.width)
    stages = ((b, 2, 1, 1), (int(1.5 * b), 2, 2, 2), (2 * b, 4, 2, 4), (int(2.5 * b), 4, 1, 8))
    x = self.freq_norm('input_norm')(as_nhwc(x))
    x = self.conv(2 * b, (5, 5), strides=(2, 1), padding=((2, 2), (2, 2)), name='stem')(x)
    x = nn.relu(self.batch_norm(train, name='stem_bn')(x))
    for stage, (features, num_blocks, freq_stride, dilation) in enumerate(stages, start=1):
      for index in range(num_blocks):
        x = self.block(features, f'stage{stage}_block{index}', dilation=dilation,
                       freq_stride=freq_stride if index == 0 else 1)(x, train)
      x = self.freq_norm(f'stage{stage}_norm')(x)
    features = x.shape[-1]
    x = self.conv(features, (5, 5), padding=((0, 0), (2, 2)), groups=features, name='head_dw')(x)
    x = self.conv(4 * b, (1, 1), name='head_pw')(x)
    x = nn.relu(self.batch_norm(train, name='head_bn')(x))
    x = jnp.mean(x, axis=(1, 2), keepdims=True)
    x = self.conv(self.num_classes, (1, 1), use_bias=True, name='classifier')(x)
    return x[:, 0, 0, :].astype(jnp.float32)
