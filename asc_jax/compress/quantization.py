"""int8 quantization of the convolutional networks: QAT, post-training calibration, quantized apply.

Scheme (the numbers asc_jax.compress.int8_runtime reproduces from an export):
  weights      every `layers.Conv` kernel, int8 per output channel (last kernel axis), symmetric,
               computed by qwix.quantize (absmax calibration: scale = max|w| / 127.5,
               q = clip(round(w / scale), -128, 127)); the per-channel scales are stored as float16;
  activations  the input of every `layers.Conv`, int8 per tensor, symmetric, with a static scale
               from calibration (scale = calibrated max|x| / 127.5; q = clip(round(x * s'),
               -128, 127) with s' = 1 / scale rounded to float32);
  inference    every BatchNorm / SubSpectralNorm becomes the affine x * m + o with
               m = scale / sqrt(var + eps) and o = bias - mean * m, stored as float16 (the export
               folds each kernel's scale into the m of the norm after it);
  float32      biases, ResNorm, ReLU / SiLU, pooling, residual sums, accumulation.
Float16 for the per-channel numbers is what keeps BC-ResNet-Mod-8 under the DCASE2021 61 KB:
float32 normalization statistics alone would take more than that.

Why not qwix's own model interception: qwix rewrites the convolution, dot_general and einsum calls
it sees, but the 'fast' depthwise convolution is a sum of shifted slices (docs/performance.md)
that it never sees, and the 'lax' form trains about 5x slower on CPU. Both forms route every
kernel through `Conv.transform_kernel` and every input through `Conv.__call__`, so one
`flax.linen.intercept_methods` hook fake-quantizes all convolutions of either form identically
(straight-through gradients), with qwix doing the weight quantization itself.
"""

import dataclasses
import functools
from typing import Any, Callable, Iterable, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import qwix

from asc_jax.models import bcresnet
from asc_jax.models import layers

INT8_MIN, INT8_MAX = -128, 127
INT8_SYMMETRIC_BOUND = 127.5   # qwix's symmetric int8 bound: scale = absmax / 127.5.
STORED_FLOAT = jnp.float16     # per-channel scales and folded normalizations, as exported.
BN_EPSILON = bcresnet.BN_EPSILON   # every BatchNorm of the networks.
ActivationScales = Mapping[str, float]   # Conv module path 'stage1_block0/pre_conv' -> input scale.


def quantize_kernel(kernel: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(int8 values shaped like kernel, scale per output channel [C_out] as stored: float16)."""
  quantized = qwix.quantize(jnp.asarray(kernel, jnp.float32), jnp.int8,
                            channelwise_axes=(kernel.ndim - 1,))
  return quantized.qvalue, quantized.scale.reshape(-1).astype(STORED_FLOAT)


def straight_through(x: jax.Array, quantized: jax.Array) -> jax.Array:
  """`quantized` in the forward pass, identity gradient with respect to x in the backward pass."""
  return x + jax.lax.stop_gradient(quantized - x)


def fake_quantize_kernel(kernel: jax.Array) -> jax.Array:
  values, scale = quantize_kernel(kernel)
  return straight_through(kernel, values.astype(jnp.float32) * scale.astype(jnp.float32))


def scale_from_absmax(absmax: float) -> float:
  """Symmetric int8 scale for a calibrated range; 1.0 for an all-zero range (nothing to scale)."""
  return float(np.float32(absmax) / np.float32(INT8_SYMMETRIC_BOUND)) if absmax > 0 else 1.0


def inverse_scale(scale: float) -> np.float32:
  """1 / scale rounded once to float32: activations are quantized as round(x * inverse_scale).

  Written as a product on purpose: XLA turns x / constant into that product anyway, and the
  NumPy runtime must round exactly the same numbers to land on the same integers.
  """
  return np.float32(1) / np.float32(scale)


def quantize_activation(x: jax.Array, scale: float) -> jax.Array:
  """int8 values of x at a static per-tensor scale (as float32: cast where integers are needed)."""
  return jnp.clip(jnp.round(x.astype(jnp.float32) * inverse_scale(scale)), INT8_MIN, INT8_MAX)


def fake_quantize_activation(x: jax.Array, scale: float) -> jax.Array:
  dequantized = quantize_activation(x, scale) * np.float32(scale)
  return straight_through(x.astype(jnp.float32), dequantized).astype(x.dtype)


# A BC-ResBlock kernel -> the normalization right after it. At inference the kernel's per-channel
# scale is folded into that normalization's multiplier (one float16 per channel instead of two).
FOLDED_INTO = {'pre_conv': 'pre_bn', 'freq_conv': 'ssn/bn', 'time_conv': 'time_bn'}


def folded_norm(scale: jax.Array, bias: jax.Array, mean: jax.Array, var: jax.Array, eps: float
                ) -> tuple[jax.Array, jax.Array]:
  """Inference-mode BatchNorm as x * m + o: (m, o) in float32, before rounding to STORED_FLOAT."""
  m = scale.astype(jnp.float32) * jax.lax.rsqrt(var.astype(jnp.float32) + np.float32(eps))
  return m, bias.astype(jnp.float32) - mean.astype(jnp.float32) * m


def stored_float(x: jax.Array) -> jax.Array:
  """x rounded to the stored float width, back in float32."""
  return x.astype(STORED_FLOAT).astype(jnp.float32)


def stored_norm(norm_params: Mapping[str, jax.Array], norm_stats: Mapping[str, jax.Array],
                folded_kernel: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array]:
  """(multiplier, offset) as STORED_FLOAT: a norm as exported, with the per-channel scale of
  `folded_kernel` (the kernel right before it) folded into the multiplier."""
  m, o = folded_norm(norm_params['scale'], norm_params['bias'], norm_stats['mean'],
                     norm_stats['var'], BN_EPSILON)
  m = stored_float(m)
  if folded_kernel is not None:
    m = m * quantize_kernel(folded_kernel)[1].astype(jnp.float32)
  return m.astype(STORED_FLOAT), o.astype(STORED_FLOAT)


def folded_kernel_path(norm_path: tuple[str, ...]) -> Optional[tuple[str, ...]]:
  """Path of the kernel whose scale folds into the norm at `norm_path`, or None."""
  for conv, norm in FOLDED_INTO.items():
    parts = tuple(norm.split('/'))
    if norm_path[-len(parts):] == parts:
      return (*norm_path[:-len(parts)], conv, 'kernel')
  return None


def lookup(tree: Mapping[str, Any], path: tuple[str, ...]) -> Optional[Any]:
  for key in path:
    if not isinstance(tree, Mapping) or key not in tree:
      return None
    tree = tree[key]
  return tree


def _is_folded_conv(module: nn.Module) -> bool:
  return module.name in FOLDED_INTO and isinstance(module.parent, bcresnet.BCResBlock)


def _inference_norm(module: nn.BatchNorm, x: jax.Array, params: Mapping[str, Any]) -> jax.Array:
  """What an exported norm computes: x * multiplier + offset (float16 numbers, float32 math)."""
  kernel_path = folded_kernel_path(tuple(module.path))
  m, o = stored_norm(module.variables['params'], module.variables['batch_stats'],
                     lookup(params, kernel_path) if kernel_path else None)
  axes = [axis % x.ndim for axis in
          (module.axis if isinstance(module.axis, tuple) else (module.axis,))]
  shape = [x.shape[axis] if axis in axes else 1 for axis in range(x.ndim)]
  y = x.astype(jnp.float32) * m.astype(jnp.float32).reshape(shape) + o.astype(
      jnp.float32).reshape(shape)
  return y.astype(x.dtype)


def _integer_conv(module: layers.Conv, x: jax.Array, input_scale: float) -> jax.Array:
  """What an exported convolution computes, in the same float32 operations and order.

  int8 inputs times int8 weights, accumulated exactly (every partial sum of these networks stays
  far below 2**24, so float32 holds it exactly in any summation order), times the input scale;
  a kernel not folded into the norm after it then takes its own scale and bias.
  """
  params = module.variables['params']
  values, kernel_scale = quantize_kernel(params['kernel'])
  inputs = quantize_activation(x, input_scale)
  y = module.convolve(inputs, values.astype(jnp.float32)) * np.float32(input_scale)
  if not _is_folded_conv(module):
    y = y * kernel_scale.astype(jnp.float32)
    if module.use_bias:
      y = y + params['bias'].astype(jnp.float32)
  return y.astype(x.dtype)


def module_path(module: nn.Module) -> str:
  return '/'.join(module.path)


def quantizing_interceptor(activation_scales: Optional[ActivationScales],
                           inference_params: Optional[Mapping[str, Any]] = None) -> Callable:
  """An intercept_methods hook: int8 fake-quantized kernels, and inputs when scales are given.

  With `inference_params` (the params of an inference pass), norms and the kernels before them
  compute as exported: integer kernels, scale folded into the float16 norm multiplier; with
  int8 inputs too, every convolution runs as `_integer_conv`, the export's own arithmetic.
  """

  def input_scale(module: layers.Conv) -> float:
    path = module_path(module)
    if path not in activation_scales:
      raise KeyError(f'no calibrated int8 input scale for convolution {path!r}: the activation '
                     'scales come from another architecture; calibrate again.')
    return activation_scales[path]

  def intercept(next_fun, args, kwargs, context):
    module = context.module
    inference = inference_params is not None
    if (inference and isinstance(module, nn.BatchNorm)
        and context.method_name == '__call__' and module.use_running_average):
      return _inference_norm(module, args[0], inference_params)
    if not isinstance(module, layers.Conv):
      return next_fun(*args, **kwargs)
    if context.method_name == 'transform_kernel':
      kernel = next_fun(*args, **kwargs)
      if inference and _is_folded_conv(module):
        return quantize_kernel(kernel)[0].astype(jnp.float32)
      return fake_quantize_kernel(kernel)
    if context.method_name == '__call__' and activation_scales is not None:
      if inference:
        return _integer_conv(module, args[0], input_scale(module))
      return next_fun(fake_quantize_activation(args[0], input_scale(module)), *args[1:],
                      **kwargs)
    return next_fun(*args, **kwargs)

  return intercept


@dataclasses.dataclass(frozen=True)
class QuantizedModel:
  """A network run with int8 fake quantization; `init` and `apply` as in flax.linen.Module.

  Parameters stay float32 (what QAT updates and checkpoints store); every forward pass sees
  their int8 values. `activation_scales` None quantizes weights only (used while calibrating).
  """
  model: nn.Module
  activation_scales: Optional[ActivationScales] = None

  def init(self, *args, **kwargs):
    with nn.intercept_methods(quantizing_interceptor(self.activation_scales)):
      return self.model.init(*args, **kwargs)

  def apply(self, variables, *args, train: bool, **kwargs):
    """model.apply; with train=False, norms run in their exported float16 form (see module doc)."""
    interceptor = quantizing_interceptor(self.activation_scales,
                                         None if train else variables['params'])
    with nn.intercept_methods(interceptor):
      return self.model.apply(variables, *args, train=train, **kwargs)


@functools.partial(jax.jit, static_argnums=0)
def conv_input_absmax(model: nn.Module, variables: Any, logmel: jax.Array) -> dict[str, jax.Array]:
  """max |input| of every convolution in one inference pass (weights already int8), by path."""
  found = {}

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, layers.Conv) and context.method_name == '__call__':
      found[module_path(context.module)] = jnp.max(jnp.abs(args[0].astype(jnp.float32)))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    QuantizedModel(model).apply(variables, logmel, train=False)
  return found


def calibrate_activation_scales(model: nn.Module, variables: Any,
                                batches: Iterable[jax.Array]) -> dict[str, float]:
  """Post-training calibration: per-convolution input scales from the max |x| over `batches`."""
  absmax: dict[str, float] = {}
  for logmel in batches:
    for path, value in jax.device_get(conv_input_absmax(model, variables, logmel)).items():
      absmax[path] = max(absmax.get(path, 0.0), float(value))
  if not absmax:
    raise ValueError('activation calibration saw no batch: give at least one '
                     '(config.quant.calibration_batches >= 1).')
  return {path: scale_from_absmax(value) for path, value in sorted(absmax.items())}


def scheme_description(quant: ml_collections.ConfigDict) -> dict[str, Any]:
  """What an export's manifest says about how its numbers were quantized."""
  return dict(
      weights=dict(dtype='int8', granularity='per output channel (last kernel axis)',
                   symmetric=True, scale='max|w| / 127.5', rounding='half to even',
                   clip=[INT8_MIN, INT8_MAX], library=f'qwix {qwix.__version__}'),
      activations=dict(dtype='int8' if quant.activations == 'int8' else 'float32',
                       where='input of every convolution', granularity='per tensor',
                       symmetric=True, scale='calibrated max|x| / 127.5',
                       quantized='round(x * float32(1 / scale))',
                       rounding='half to even', clip=[INT8_MIN, INT8_MAX]),
      normalizations=dict(dtype='float16', form='x * multiplier + offset (BatchNorm and '
                          'SubSpectralNorm in inference mode; a preceding kernel scale folded into '
                          'the multiplier)'),
      kernel_scales='float16, per output channel, for kernels not followed by a normalization',
      float32='biases, ResNorm, activations between convolutions, accumulation',
      calibration_batches=int(quant.calibration_batches),
      training='qat' if quant.qat else 'ptq')
