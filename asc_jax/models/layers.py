"""Convolution and pooling layers in NHWC = (batch, frequency, time, channels), in two forms.

`Conv` stores its kernel exactly as `flax.linen.Conv` does ('kernel' of shape
(k_h, k_w, in / groups, out), optional 'bias'), and computes with it in one of two forms:
  'lax'   every convolution through `lax.conv_general_dilated` (depthwise via feature_group_count);
  'fast'  depthwise convolutions as a sum of shifted slices times per-channel weights, 1x1
          convolutions as a matrix product on [positions, channels] views, convolutions of a
          one-channel input (the stem) as a patches matrix product ([positions, k_h * k_w] x
          [k_h * k_w, out]), other convolutions as in 'lax'. Same mathematics, and on XLA's CPU
          backend several times faster (docs/performance.md).
Parameters, checkpoints, complexity counting and export do not depend on the form.

Every kernel passes through `Conv.transform_kernel` before use: the one place where a
fake-quantizer (or pruning mask) wraps the weights of either form, e.g. with
`flax.linen.intercept_methods` on method_name == 'transform_kernel'.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

CONV_IMPLS = ('fast', 'lax')

# PyTorch's default for conv weights (kaiming_uniform with a = sqrt(5)): U(+-1/sqrt(fan_in)).
torch_like_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')
BIAS_INITS = ('torch', 'zeros')


def torch_like_bias_init(fan_in: int):
  """PyTorch's default for a conv bias: U(+-1/sqrt(fan_in)), fan_in = in / groups x k_h x k_w."""
  bound = 1.0 / float(fan_in) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


class Conv(nn.Module):
  """2-D convolution over (N, F, T, C) with explicit padding ((top, bottom), (left, right))."""
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
  dilation: tuple[int, int] = (1, 1)
  groups: int = 1
  use_bias: bool = False
  bias_init: str = 'zeros'    # zeros | torch (U(+-1/sqrt(fan_in)), PyTorch's Conv2d default).
  dtype: Any = jnp.float32
  impl: str = 'fast'

  def transform_kernel(self, kernel: jax.Array) -> jax.Array:
    """Identity; the hook that quantizers and pruners intercept (see the module docstring)."""
    return kernel

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.impl not in CONV_IMPLS:
      raise ValueError(f'model config key conv_impl={self.impl!r} is unknown; '
                       f'choose one of {", ".join(CONV_IMPLS)}.')
    in_features = x.shape[-1]
    if in_features % self.groups or self.features % self.groups:
      raise ValueError(f'{self.name}: {in_features} -> {self.features} channels cannot be split '
                       f'into {self.groups} groups.')
    kernel_shape = (*self.kernel_size, in_features // self.groups, self.features)
    kernel = self.param('kernel', torch_like_kernel_init, kernel_shape, jnp.float32)
    kernel = self.transform_kernel(kernel).astype(self.dtype)
    y = self.convolve(x.astype(self.dtype), kernel)
    if self.use_bias:
      if self.bias_init not in BIAS_INITS:
        raise ValueError(f'model config key bias_init={self.bias_init!r} is unknown; '
                         f'choose one of {", ".join(BIAS_INITS)}.')
      fan_in = kernel_shape[0] * kernel_shape[1] * kernel_shape[2]
      init = (torch_like_bias_init(fan_in) if self.bias_init == 'torch'
              else nn.initializers.zeros)
      y = y + self.param('bias', init, (self.features,), jnp.float32).astype(self.dtype)
    return y

  def convolve(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x convolved with `kernel` in this layer's form, without the bias, in their dtype."""
    if self.impl == 'fast' and self._is_pointwise():
      return self._pointwise(x, kernel[0, 0])
    if self.impl == 'fast' and self._is_depthwise(x.shape[-1]):
      return self._shifted_sum(x, kernel[:, :, 0, :])
    if self.impl == 'fast' and self.groups == 1 and x.shape[-1] == 1:
      return self._patches_product(x, kernel)
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=self.strides, padding=self.padding, rhs_dilation=self.dilation,
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=self.groups)

  def _is_pointwise(self) -> bool:
    return (self.kernel_size == (1, 1) and self.groups == 1 and self.strides == (1, 1)
            and self.padding == ((0, 0), (0, 0)))

  def _is_depthwise(self, in_features: int) -> bool:
    return self.groups == in_features == self.features

  def _pointwise(self, x: jax.Array, matrix: jax.Array) -> jax.Array:
    """1x1 convolution as one [positions, C_in] x [C_in, C_out] matrix product.

    Written on 2-D views rather than as an einsum over (N, F, T, C): XLA's CPU backend then feeds
    the kernel gradient x^T g to its matrix product directly, where the einsum form first copies
    g into a transposed [C_out, positions] layout.
    """
    return jnp.dot(x.reshape(-1, x.shape[-1]), matrix).reshape(*x.shape[:-1], matrix.shape[-1])

  def _shifted_sum(self, x: jax.Array, taps: jax.Array) -> jax.Array:
    """Depthwise convolution as sum over taps (i, j) of strided slices times taps[i, j, :]."""
    total = None
    for (i, j), window in self._tap_windows(x):
      term = window * taps[i, j]
      total = term if total is None else total + term
    return total

  def _patches_product(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Convolution as [positions, k_h * k_w * C_in] patches times the [k_h * k_w * C_in, out]
    kernel: one matrix product, whose kernel gradient patches^T g XLA's CPU backend computes
    several times faster than the gradient of lax.conv for a one-channel input."""
    windows = [window for _, window in self._tap_windows(x)]
    patches = jnp.concatenate(windows, axis=-1)
    matrix = kernel.reshape(-1, kernel.shape[-1])
    return jnp.dot(patches.reshape(-1, matrix.shape[0]), matrix).reshape(
        *patches.shape[:-1], matrix.shape[-1])

  def _tap_windows(self, x: jax.Array):
    """((i, j), the strided slice of the padded x that kernel tap (i, j) multiplies), in the
    kernel's row-major tap order."""
    x = jnp.pad(x, ((0, 0), *self.padding, (0, 0)))
    out_shape = [(size - dil * (k - 1) - 1) // stride + 1 for size, k, dil, stride in
                 zip(x.shape[1:3], self.kernel_size, self.dilation, self.strides)]
    for i in range(self.kernel_size[0]):
      for j in range(self.kernel_size[1]):
        start = (0, i * self.dilation[0], j * self.dilation[1], 0)
        limit = (x.shape[0], start[1] + (out_shape[0] - 1) * self.strides[0] + 1,
                 start[2] + (out_shape[1] - 1) * self.strides[1] + 1, x.shape[3])
        yield (i, j), jax.lax.slice(x, start, limit, (1, *self.strides, 1))


class MaxPool(nn.Module):
  """Non-overlapping max pooling; a trailing odd row or frame is dropped (PyTorch floor mode).

  Written as a reshape and a max whose gradient flows to the argmax of each window (first one on
  ties), computed once in the forward pass. XLA's CPU backend handles the gradient of
  reduce_window slowly, and jnp.max's own gradient (x == max, divided by the tie count) can give
  0/0 = NaN under jit when a fusion recomputes its input with different rounding.
  """
  window: Sequence[int] = (2, 2)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    (wf, wt), (n, f, t, c) = self.window, x.shape
    x = x[:, :f - f % wf, :t - t % wt]
    windows = x.reshape(n, f // wf, wf, t // wt, wt, c).transpose(0, 1, 3, 5, 2, 4)
    return window_max(windows.reshape(n, f // wf, t // wt, c, wf * wt))


@jax.custom_vjp
def window_max(windows: jax.Array) -> jax.Array:
  """Maximum over the last axis, with the whole gradient sent to the (first) argmax."""
  return jnp.max(windows, axis=-1)


def _window_max_fwd(windows):
  index = jnp.argmax(windows, axis=-1)
  picked = jnp.take_along_axis(windows, index[..., None], axis=-1)[..., 0]
  # A zero-byte array whose first dimension carries the window size (residuals must be arrays).
  return picked, (index, jnp.zeros((windows.shape[-1], 0), windows.dtype))


def _window_max_bwd(residuals, cotangent):
  index, size_carrier = residuals
  onehot = jax.nn.one_hot(index, size_carrier.shape[0], dtype=cotangent.dtype)
  return (onehot * cotangent[..., None],)


window_max.defvjp(_window_max_fwd, _window_max_bwd)
