"""The int8 export as a graph of deployable operations, and its NumPy evaluation.

`build(model)` turns an int8_runtime.Int8Model (the stored export) into a list of operations that
TFLite and ONNX both have: convolutions with int8 kernels, MEAN, SUB, RSQRT, MUL, ADD, LOGISTIC,
MAX_POOL, PAD, SLICE, CONCAT, and a requantize (identity in real values: TFLite's QUANTIZE) where
a tensor feeds a convolution and something else. Layout NHWC = (batch, frequency, time, channel).

How the network maps onto them:
- every BatchNorm is folded into the convolution before it: per-channel weight scale |multiplier|
  (the sign goes into the int8 kernel values) and bias = offset;
- SubSpectralNorm (one multiplier per sub-band and channel) is the depthwise frequency convolution
  run once per sub-band on a slice of the padded input, each with its sub-band's scale and bias,
  the results concatenated along frequency (exact: the same int8 products, one rescale each);
- ResNorm is lam * x + d * rsqrt(mean(d * d) + eps) with d = x - mean, means over time and
  channels (d * d as MUL: LiteRT has no int16 SQUARED_DIFFERENCE);
- SiLU is x * logistic(x).
`evaluate(graph, logmel)` computes every tensor in float32 exactly as the NumPy runtime does
(convolution inputs quantized with the QAT scales, integer sums, then scales); a test checks it
reproduces Int8Model.logits. The exporters use these values to calibrate the int8 scales of
the tensors between convolutions, which the NumPy runtime keeps in float32.
"""

import dataclasses
from typing import Any, Optional

import numpy as np

from asc_jax.compress import int8_runtime

STEM_INPUT = 'stem/input'
BLOCKS_PER_STAGE = (2, 2, 2, 3)


@dataclasses.dataclass
class Op:
  """One operation: `kind`, input tensor names, one output name, attributes (numpy values)."""
  kind: str
  inputs: tuple[str, ...]
  output: str
  attrs: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Graph:
  """Ops in execution order; `constants` are float32 arrays (ADD/MUL operands)."""
  input: str
  output: str
  ops: list[Op]
  constants: dict[str, np.ndarray]
  input_shape: tuple[int, ...]   # (F, T) of one clip
  clipped_weights: int = 0       # kernel entries -128 whose sign had to flip (stored as 127)

  def producer(self, name: str) -> Optional[Op]:
    return next((op for op in self.ops if op.output == name), None)

  def consumers(self, name: str) -> list[Op]:
    return [op for op in self.ops if name in op.inputs]

  def ops_after(self, tensor: str) -> list[Op]:
    """The ops that (transitively) depend on `tensor` only through it, in order."""
    reached, chosen = {tensor}, []
    for op in self.ops:
      if any(name in reached for name in op.inputs):
        chosen.append(op)
        reached.add(op.output)
    return chosen


class _Builder:
  def __init__(self, model: int8_runtime.Int8Model):
    self.model = model
    self.ops: list[Op] = []
    self.constants: dict[str, np.ndarray] = {}
    self.clipped = 0

  def get(self, name: str) -> np.ndarray:
    return self.model.arrays[name]

  def emit(self, kind: str, inputs, output: str, **attrs) -> str:
    self.ops.append(Op(kind, tuple(inputs), output, attrs))
    return output

  def constant(self, name: str, value) -> str:
    self.constants[name] = np.asarray(value, np.float32)
    return name

  def signed_kernel(self, layer: str, multiplier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 kernel with each output channel's sign of `multiplier` folded in, |multiplier|)."""
    kernel = self.get(f'params/{layer}/kernel').astype(np.int16)
    sign = np.where(multiplier < 0, -1, 1).astype(np.int16)
    flipped = kernel * sign
    self.clipped += int(np.sum(flipped > 127))
    scale = np.abs(multiplier).astype(np.float32)
    scale[scale == 0] = 1.0   # an all-zero channel: any positive scale (TFLite needs one)
    kernel_values = np.clip(flipped, -128, 127).astype(np.int8)
    kernel_values[:, :, :, multiplier == 0] = 0
    return kernel_values, scale

  def conv(self, x: str, layer: str, output: str, *, padding=((0, 0), (0, 0)), strides=(1, 1),
           norm: Optional[str] = None, activation: str = 'none', band: Optional[int] = None
           ) -> str:
    """A convolution of `layer`, with `norm` folded in (or its own kernel scale and bias)."""
    if norm is not None:
      multiplier = self.get(f'params/{norm}/multiplier').astype(np.float32)
      offset = self.get(f'params/{norm}/offset').astype(np.float32)
      if band is not None:
        multiplier, offset = multiplier[band], offset[band]
      kernel, scale = self.signed_kernel(layer, multiplier)
      bias = offset
    else:
      kernel = self.get(f'params/{layer}/kernel')
      scale = self.get(f'params/{layer}/kernel_scale').astype(np.float32)
      bias_name = f'params/{layer}/bias'
      bias = (self.get(bias_name) if bias_name in self.model.arrays
              else np.zeros(kernel.shape[-1], np.float32))
    depthwise = kernel.shape[2] == 1 and layer.endswith(('freq_conv', 'time_conv'))
    return self.emit('conv', [x], output, layer=layer, kernel=kernel, weight_scale=scale,
                     bias=np.asarray(bias, np.float32),
                     input_scale=np.float32(self.get(f'quant/{layer}/input_scale')),
                     padding=padding, strides=strides, depthwise=depthwise,
                     activation=activation)

  def standardize(self, x: str, axes: tuple[int, ...], prefix: str, eps: float) -> str:
    mean = self.emit('mean', [x], f'{prefix}/mean', axes=axes)
    centred = self.emit('sub', [x, mean], f'{prefix}/centred')
    squares = self.emit('mul', [centred, centred], f'{prefix}/squares')
    var = self.emit('mean', [squares], f'{prefix}/var', axes=axes)
    inverse = self.emit('rsqrt', [var], f'{prefix}/rsqrt', eps=np.float32(eps))
    return self.emit('mul', [centred, inverse], f'{prefix}/standardized')

  def freq_norm(self, x: str, prefix: str, output: str) -> str:
    """ResNorm / RFN / nothing, as in Int8Model.freq_norm."""
    config = self.model.manifest['model']
    lam, eps = float(config['norm_lambda']), config['norm_eps']
    if config['norm'] == 'resnorm':
      scaled = self.emit('mul', [x, self.constant(f'{prefix}/lambda', lam)], f'{prefix}/scaled')
      return self.emit('add', [scaled, self.standardize(x, (2, 3), f'{prefix}/freq', eps)], output)
    if config['norm'] == 'rfn':
      layer = self.standardize(x, (1, 2, 3), f'{prefix}/layer', eps)
      freq = self.standardize(x, (2, 3), f'{prefix}/freq', eps)
      left = self.emit('mul', [layer, self.constant(f'{prefix}/lambda', lam)], f'{prefix}/ln')
      right = self.emit('mul', [freq, self.constant(f'{prefix}/1-lambda', 1 - lam)],
                        f'{prefix}/in')
      return self.emit('add', [left, right], output)
    if config['norm'] == 'none':
      return x
    raise ValueError(f'model.norm {config["norm"]!r} has no export; resnorm, rfn or none.')

  def sub_spectral_conv(self, x: str, name: str, frequencies: int) -> str:
    """freq_conv (3x1 depthwise, padding 1) + SubSpectralNorm, one convolution per sub-band."""
    multiplier = self.get(f'params/{name}/ssn/bn/multiplier')
    if multiplier.ndim == 1:
      return self.conv(x, f'{name}/freq_conv', f'{name}/aux', padding=((1, 1), (0, 0)),
                       norm=f'{name}/ssn/bn')
    bands = multiplier.shape[0]
    rows = frequencies // bands
    padded = self.emit('pad', [x], f'{name}/freq_conv/padded', padding=((1, 1), (0, 0)))
    parts = []
    for band in range(bands):
      part = self.emit('slice', [padded], f'{name}/freq_conv/band{band}/input',
                       begin=band * rows, size=rows + 2, axis=1)
      parts.append(self.conv(part, f'{name}/freq_conv', f'{name}/freq_conv/band{band}',
                             norm=f'{name}/ssn/bn', band=band))
    return self.emit('concat', parts, f'{name}/aux', axis=1)

  def block(self, x: str, name: str, shape: list[int]) -> str:
    """One BC-ResBlock; `shape` is [F, T, C] of x, updated to the output's."""
    features = self.get(f'params/{name}/freq_conv/kernel').shape[-1]
    transition = shape[2] != features
    shortcut = x
    if transition:
      x = self.conv(x, f'{name}/pre_conv', f'{name}/pre', norm=f'{name}/pre_bn',
                    activation='relu')
      shape[2] = features
    else:   # x is also the shortcut: its own int8 range, requantized to freq_conv's QAT scale
      x = self.emit('requantize', [x], f'{name}/freq_conv/input')
    aux = self.sub_spectral_conv(x, name, shape[0])
    y = self.emit('mean', [aux], f'{name}/freq_mean', axes=(1,))
    y = self.conv(y, f'{name}/time_conv', f'{name}/time', padding=((0, 0), (1, 1)),
                  norm=f'{name}/time_bn')
    gate = self.emit('logistic', [y], f'{name}/sigmoid')
    y = self.emit('mul', [y, gate], f'{name}/silu')
    y = self.conv(y, f'{name}/point_conv', f'{name}/point')
    if transition:
      return self.emit('add', [aux, y], f'{name}/output', activation='relu')
    summed = self.emit('add', [aux, y], f'{name}/sum')
    return self.emit('add', [summed, shortcut], f'{name}/output', activation='relu')


def build(model: int8_runtime.Int8Model, input_shape: tuple[int, int]) -> Graph:
  """The graph of a BC-ResNet-Mod export for log-mel clips of `input_shape` (F, T)."""
  builder = _Builder(model)
  x = builder.freq_norm('logmel', 'input_norm', STEM_INPUT)
  x = builder.conv(x, 'stem', 'stem/output', padding=((2, 2), (2, 2)), strides=(2, 2))
  frequencies, frames = input_shape
  shape = [(frequencies - 1) // 2 + 1, (frames - 1) // 2 + 1,
           builder.get('params/stem/kernel').shape[-1]]
  for stage, num_blocks in enumerate(BLOCKS_PER_STAGE, start=1):
    for index in range(num_blocks):
      x = builder.block(x, f'stage{stage}_block{index}', shape)
    x = builder.freq_norm(x, f'stage{stage}_norm', f'stage{stage}/normalized')
    if stage <= 2:
      x = builder.emit('max_pool', [x], f'stage{stage}/pooled', size=2)
      shape[0], shape[1] = shape[0] // 2, shape[1] // 2
  x = builder.conv(x, 'head', 'head/output')
  builder.emit('mean', [x], 'logits', axes=(1, 2), keepdims=False)
  return Graph(input='logmel', output='logits', ops=builder.ops, constants=builder.constants,
               input_shape=tuple(input_shape), clipped_weights=builder.clipped)


def quantize_input(x: np.ndarray, scale: np.float32) -> np.ndarray:
  """int8 values as the runtime computes them: clip(round(x * float32(1 / scale)))."""
  q = np.round(np.asarray(x, np.float32) * (np.float32(1) / np.float32(scale)))
  return np.clip(q, int8_runtime.INT8_MIN, int8_runtime.INT8_MAX)


def _conv(x: np.ndarray, attrs: dict) -> np.ndarray:
  q = quantize_input(x, attrs['input_scale'])
  total = int8_runtime._shifted_conv(q, attrs['kernel'].astype(np.float64), attrs['padding'],
                                     attrs['strides'])
  y = total.astype(np.float32) * attrs['input_scale']
  y = y * attrs['weight_scale'] + attrs['bias']
  return np.maximum(y, 0) if attrs['activation'] == 'relu' else y


def evaluate_op(op: Op, values: list[np.ndarray]) -> np.ndarray:
  """The float32 result of one op (the NumPy runtime's arithmetic, in its order)."""
  a = op.attrs
  if op.kind == 'conv':
    return _conv(values[0], a)
  if op.kind == 'requantize':
    return values[0]
  if op.kind == 'mean':
    return values[0].mean(axis=a['axes'], keepdims=a.get('keepdims', True))
  if op.kind == 'sub':
    return values[0] - values[1]
  if op.kind == 'rsqrt':
    return np.float32(1) / np.sqrt(values[0] + a['eps'])
  if op.kind == 'mul':
    return values[0] * values[1]
  if op.kind == 'add':
    y = values[0] + values[1]
    return np.maximum(y, 0) if a.get('activation') == 'relu' else y
  if op.kind == 'logistic':
    return 1 / (1 + np.exp(-values[0]))
  if op.kind == 'pad':
    return np.pad(values[0], ((0, 0), *a['padding'], (0, 0)))
  if op.kind == 'slice':
    return np.take(values[0], np.arange(a['begin'], a['begin'] + a['size']), axis=a['axis'])
  if op.kind == 'concat':
    return np.concatenate(values, axis=a['axis'])
  if op.kind == 'max_pool':
    n, f, t, c = values[0].shape
    s = a['size']
    x = values[0][:, :f - f % s, :t - t % s]
    return x.reshape(n, f // s, s, t // s, s, c).max(axis=(2, 4))
  raise ValueError(f'unknown op kind {op.kind!r}')


def evaluate(graph: Graph, logmel: np.ndarray, start: Optional[str] = None,
             start_value: Optional[np.ndarray] = None, stop: Optional[str] = None
             ) -> dict[str, np.ndarray]:
  """Every tensor's float32 value for log-mels [N, F, T] (or from `start` = `start_value`),
  up to tensor `stop` when given."""
  values = dict(graph.constants)
  if start is None:
    values[graph.input] = np.asarray(logmel, np.float32)[..., None]
    ops = graph.ops
  else:
    values[start] = np.asarray(start_value, np.float32)
    ops = graph.ops_after(start)
  for op in ops:
    values[op.output] = evaluate_op(op, [values[name] for name in op.inputs]).astype(np.float32)
    if op.output == stop:
      break
  return values
