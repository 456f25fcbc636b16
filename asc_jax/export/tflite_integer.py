"""asc_jax's integer runtime: a fully integer .tflite file evaluated bit for bit as TFLite Micro
evaluates it, in NumPy, a batch of clips at a time.

Why: the int8 NumPy runtime (asc_jax/compress/int8_runtime.py) keeps the tensors between
convolutions in float32, as quantization-aware training does; a fully integer file must round
them, and TFLite Micro's integer kernels (MEAN, RSQRT, LOGISTIC, the rescaling in ADD, SUB, MUL
and the convolutions) round in their own fixed-point ways. One-step differences then spread
through the network, so the float runtime predicts what the microcontroller outputs on only
92-96 % of real clips. This runtime reproduces the reference kernels' integer arithmetic
(asc_jax.export.fixed_point) from the file's own tensors, scales and options, so its outputs are
the file's outputs on a device, and its accuracy is the deployed model's accuracy.

Covers the builtins of asc_jax's fully integer exports (--tflite_activations in ACTIVATIONS):
CONV_2D, DEPTHWISE_CONV_2D (int8 x int8 with int32 bias, int16 x int8 with int64 bias), ADD, SUB,
MUL, MEAN, RSQRT, LOGISTIC (int8 and int16), QUANTIZE between int8 and int16, MAX_POOL_2D, PAD,
SLICE, CONCATENATION; anything else raises. Checked against the tflite-micro interpreter from PyPI,
op by op on exhaustive or random inputs (tests/test_tflite_integer.py) and on whole exported
models (tests/test_export_formats.py): identical integers. The multipliers are derived in double
precision from the float32 scales, as that build derives them.
"""

import dataclasses
from typing import Any, Optional

import numpy as np
import tflite

from asc_jax.compress import int8_runtime
from asc_jax.export import fixed_point as fp

ACTIVATIONS = ('mixed', 'int16', 'int8')   # the export's --tflite_activations this runtime evaluates
OP = tflite.BuiltinOperator
OP_NAMES = {value: key for key, value in vars(OP).items() if not key.startswith('_')}
DTYPES = {tflite.TensorType.INT8: np.int8, tflite.TensorType.INT16: np.int16,
          tflite.TensorType.INT32: np.int32, tflite.TensorType.INT64: np.int64,
          tflite.TensorType.FLOAT32: np.float32}
RELU = tflite.ActivationFunctionType.RELU
# TFLite's int16 LOGISTIC table, sigmoid(i / 24) for i = 0..255 in unsigned 0.16 fixed point, as
# the first entry and the steps between entries (its own roundings, not recomputable exactly).
SIGMOID_TABLE_STEPS = (32768, 683, 682, 680, 680, 676, 674, 670, 667, 661, 657, 651, 645, 638, 632,
                       624, 616, 608, 599, 591, 581, 572, 562, 552, 542, 532, 521, 511, 500, 489,
                       478, 467, 456, 446, 434, 424, 412, 402, 391, 381, 370, 360, 349, 340, 329,
                       320, 310, 300, 291, 283, 273, 264, 256, 248, 240, 231, 224, 216, 209, 202,
                       195, 188, 182, 175, 169, 162, 158, 151, 146, 140, 136, 130, 126, 121, 117,
                       112, 108, 104, 100, 96, 93, 89, 86, 82, 79, 76, 74, 70, 68, 65, 62, 60, 58,
                       56, 53, 51, 49, 48, 45, 44, 42, 40, 38, 38, 35, 34, 33, 32, 30, 29, 28, 27,
                       26, 24, 24, 23, 22, 20, 21, 19, 18, 18, 17, 17, 15, 15, 15, 14, 13, 13, 12,
                       12, 11, 11, 11, 10, 9, 9, 9, 9, 8, 7, 8, 7, 7, 7, 6, 6, 6, 5, 6, 5, 5, 5, 4,
                       4, 5, 4, 3, 4, 4, 3, 3, 3, 3, 3, 3, 3, 2, 3, 2, 2, 2, 3, 1, 2, 2, 2, 2, 1,
                       2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1,
                       0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0,
                       0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                       1)


@dataclasses.dataclass
class TensorInfo:
  shape: tuple[int, ...]
  dtype: Any
  scale: np.ndarray                 # float32, [1] or per channel
  zero_point: np.ndarray            # int64
  data: Optional[np.ndarray]        # constants only


@dataclasses.dataclass
class OperatorInfo:
  name: str
  inputs: list[int]
  outputs: list[int]
  options: Any


OPTIONS = {OP.CONV_2D: tflite.Conv2DOptions, OP.DEPTHWISE_CONV_2D: tflite.DepthwiseConv2DOptions,
           OP.ADD: tflite.AddOptions, OP.SUB: tflite.SubOptions, OP.MUL: tflite.MulOptions,
           OP.MEAN: tflite.ReducerOptions, OP.MAX_POOL_2D: tflite.Pool2DOptions,
           OP.CONCATENATION: tflite.ConcatenationOptions}


def read(model: bytes) -> tuple[list[TensorInfo], list[OperatorInfo], int, int]:
  """(tensors, operators, input index, output index) of a one-subgraph .tflite file."""
  root = tflite.Model.GetRootAs(model, 0)
  graph = root.Subgraphs(0)
  tensors = []
  for index in range(graph.TensorsLength()):
    tensor = graph.Tensors(index)
    dtype = DTYPES[tensor.Type()]
    raw = root.Buffers(tensor.Buffer()).DataAsNumpy()
    shape = tuple(int(v) for v in tensor.ShapeAsNumpy())
    data = (None if isinstance(raw, int) or raw.size == 0
            else np.frombuffer(raw.tobytes(), dtype).reshape(shape))
    quantization = tensor.Quantization()
    scale = zero_point = np.zeros(0)
    if quantization is not None and quantization.ScaleLength():
      scale = quantization.ScaleAsNumpy().astype(np.float32)
      zero_point = quantization.ZeroPointAsNumpy().astype(np.int64)
    tensors.append(TensorInfo(shape, dtype, scale, zero_point, data))
  operators = []
  for index in range(graph.OperatorsLength()):
    op = graph.Operators(index)
    code = root.OperatorCodes(op.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    options = None
    if builtin in OPTIONS and op.BuiltinOptions() is not None:
      table = op.BuiltinOptions()
      options = OPTIONS[builtin]()
      options.Init(table.Bytes, table.Pos)
    operators.append(OperatorInfo(OP_NAMES.get(builtin, str(builtin)),
                                  [int(i) for i in op.InputsAsNumpy()],
                                  [int(i) for i in op.OutputsAsNumpy()], options))
  return tensors, operators, int(graph.Inputs(0)), int(graph.Outputs(0))


def _bounds(tensor: TensorInfo, activation: int = 0) -> tuple[int, int]:
  info = np.iinfo(tensor.dtype)
  low = max(info.min, int(tensor.zero_point[0])) if activation == RELU else info.min
  return low, info.max


def _clamp(x: np.ndarray, tensor: TensorInfo, activation: int = 0) -> np.ndarray:
  low, high = _bounds(tensor, activation)
  return np.clip(x, low, high).astype(np.int64)


def _f32(value) -> np.float32:
  return np.float32(value)


def _conv(op: OperatorInfo, tensors: list[TensorInfo], values: dict) -> np.ndarray:
  source, weights, bias = (tensors[i] for i in op.inputs[:3])
  output = tensors[op.outputs[0]]
  x = values[op.inputs[0]] - int(source.zero_point[0])
  options = op.options
  depthwise = op.name == 'DEPTHWISE_CONV_2D'
  kernel = weights.data.astype(np.float64)
  kernel = kernel.transpose(1, 2, 0, 3) if depthwise else kernel.transpose(1, 2, 3, 0)
  k_h, k_w = kernel.shape[:2]
  strides = (options.StrideH(), options.StrideW())
  padding = ((0, 0), (0, 0))
  if options.Padding() == tflite.Padding.SAME:
    padding = tuple(_same_padding(size, k, s) for size, k, s in
                    zip(x.shape[1:3], (k_h, k_w), strides))
  total = int8_runtime._shifted_conv(x.astype(np.float64), kernel, padding, strides)
  accumulator = np.rint(total).astype(np.int64) + bias.data.astype(np.int64)
  input_scale = float(source.scale[0])
  multipliers, shifts = zip(*(fp.quantize_multiplier(input_scale * float(w) / float(output.scale[0]))
                              for w in weights.scale))
  multiplier, shift = np.array(multipliers, np.int64), np.array(shifts, np.int64)
  if source.dtype == np.int16:
    scaled = fp.multiply_by_multiplier_64(accumulator, multiplier, shift)
  else:
    scaled = fp.multiply_by_multiplier(accumulator, multiplier, shift)
  return _clamp(scaled + int(output.zero_point[0]), output, options.FusedActivationFunction())


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  out = (size + stride - 1) // stride
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def _add_or_sub(op: OperatorInfo, tensors: list[TensorInfo], values: dict) -> np.ndarray:
  """ADD / SUB: both inputs rescaled to twice the larger input scale, left shift 20 (int8) or
  15 (int16), summed, then rescaled to the output (ADD computes the multipliers in double, SUB
  in float, as the kernels do)."""
  first, second = (tensors[i] for i in op.inputs)
  output = tensors[op.outputs[0]]
  left_shift = 15 if output.dtype == np.int16 else 20
  s1, s2, so = float(first.scale[0]), float(second.scale[0]), float(output.scale[0])
  twice = 2 * max(s1, s2)
  reals = (s1 / twice, s2 / twice, twice / ((1 << left_shift) * so))
  (m1, e1), (m2, e2), (mo, eo) = (fp.quantize_multiplier(r) for r in reals)
  a = fp.multiply_by_multiplier((values[op.inputs[0]] - first.zero_point[0]) << left_shift, m1, e1)
  b = fp.multiply_by_multiplier((values[op.inputs[1]] - second.zero_point[0]) << left_shift, m2,
                                e2)
  raw = a + b if op.name == 'ADD' else a - b
  activation = op.options.FusedActivationFunction() if op.options is not None else 0
  return _clamp(fp.multiply_by_multiplier(raw, mo, eo) + output.zero_point[0], output, activation)


def _mul(op: OperatorInfo, tensors: list[TensorInfo], values: dict) -> np.ndarray:
  first, second = (tensors[i] for i in op.inputs)
  output = tensors[op.outputs[0]]
  multiplier, shift = fp.quantize_multiplier(
      float(first.scale[0]) * float(second.scale[0]) / float(output.scale[0]))
  product = ((values[op.inputs[0]] - first.zero_point[0])
             * (values[op.inputs[1]] - second.zero_point[0]))
  activation = op.options.FusedActivationFunction() if op.options is not None else 0
  return _clamp(fp.multiply_by_multiplier(fp.wrap_int32(product), multiplier, shift)
                + output.zero_point[0], output, activation)


def _mean(op: OperatorInfo, tensors: list[TensorInfo], values: dict) -> np.ndarray:
  """MEAN: int32 sum, then input / output scale with 1 / count folded into the multiplier."""
  source, output = tensors[op.inputs[0]], tensors[op.outputs[0]]
  axes = tuple(int(a) for a in tensors[op.inputs[1]].data.reshape(-1))
  keepdims = op.options.KeepDims() if op.options is not None else False
  x = values[op.inputs[0]]
  count = int(np.prod([x.shape[a] for a in axes]))
  total = fp.wrap_int32(x.sum(axis=axes, keepdims=keepdims)) - source.zero_point[0] * count
  multiplier, shift = fp.quantize_multiplier(float(source.scale[0]) / float(output.scale[0]))
  extra = min(count.bit_length() - 1, 32, 31 + shift)
  multiplier = (multiplier << extra) // count
  return _clamp(fp.multiply_by_multiplier(fp.wrap_int32(total), multiplier, shift - extra)
                + output.zero_point[0], output)


def _rsqrt(op: OperatorInfo, tensors: list[TensorInfo], values: dict) -> np.ndarray:
  source, output = tensors[op.inputs[0]], tensors[op.outputs[0]]
  real = 1.0 / (np.sqrt(float(source.scale[0])) * float(output.scale[0]))
  multiplier, shift = fp.quantize_multiplier(real)
  value = values[op.inputs[0]] - source.zero_point[0]
  inverse, inverse_shift = fp.inverse_sqrt_multiplier(np.maximum(value, 0))
  data = fp.multiply_by_multiplier(np.ones_like(value), inverse, inverse_shift + 20)
  result = fp.multiply_by_multiplier(data, multiplier, shift - 20) + output.zero_point[0]
  return np.where(value == 0, np.iinfo(output.dtype).max, _clamp(result, output))


def sigmoid_table() -> np.ndarray:
  return np.cumsum(np.array(SIGMOID_TABLE_STEPS, np.int64))


def _logistic(op: OperatorInfo, tensors: list[TensorInfo], values: dict) -> np.ndarray:
  """int16 LOGISTIC: input rescaled to 1 / (3 * 4096) per step, table lookup with linear
  interpolation on |x|, output at scale 2**-15."""
  source = tensors[op.inputs[0]]
  if source.dtype == np.int8:
    return _logistic_int8(values[op.inputs[0]] - source.zero_point[0], float(source.scale[0]))
  scale = float(source.scale[0])
  log2 = float(np.log(_f32(scale)) * (_f32(1) / np.log(_f32(2))))
  rounded = fp.round_half_away(log2)
  if abs(log2 - rounded) < 1e-3 and 12 + rounded == 0:   # the scale 2**-12: no rescaling
    multiplier, left_shift = 3, 0
  else:   # rescale to 1 / (3 * 4096) per step, as a 15-bit multiplier and a right shift
    real, left_shift = scale * 4096.0 * 3.0, 0
    while real <= 32767.0 / 2.0 and left_shift <= 30:
      left_shift += 1
      real *= 2.0
    multiplier = int(real)
  round_term = (1 << (left_shift - 1)) if left_shift > 0 else 0
  x = (values[op.inputs[0]] * multiplier + round_term) >> left_shift
  magnitude = np.abs(x)
  step = magnitude >> 9
  table = sigmoid_table()
  inside = np.minimum(step, 254)
  low, high = table[inside], table[inside + 1]
  result = np.where(step >= 255, 0x7FFF << 10, (low << 9) + (magnitude & 0x1FF) * (high - low))
  result = np.where(x >= 0, result + (1 << 9), (1 << 25) - result + (1 << 9) - 1)
  return (result >> 10).astype(np.int64)


def _logistic_int8(x: np.ndarray, scale: float) -> np.ndarray:
  """int8 LOGISTIC: input rescaled to Q4.27, gemmlowp's fixed-point logistic, output at scale
  1 / 256 and zero point -128; inputs beyond the Q4 range saturate."""
  integer_bits = 4
  fraction, left_shift = np.frexp(scale * float(1 << (31 - integer_bits)))
  multiplier = int(fp.round_half_away(float(fraction) * (1 << 31)))
  radius = int(np.floor(((1 << integer_bits) - 1) * float(1 << (31 - integer_bits))
                        / float(1 << int(left_shift))))
  q4 = fp.multiply_by_multiplier(x, multiplier, int(left_shift))
  q23 = fp.rounding_divide_by_pot(fp.logistic(q4, integer_bits), 31 - 8) - 128
  inside = np.clip(q23, -128, 127)
  return np.where(x <= -radius, -128, np.where(x >= radius, 127, inside))


def _quantize(op: OperatorInfo, tensors: list[TensorInfo], values: dict) -> np.ndarray:
  source, output = tensors[op.inputs[0]], tensors[op.outputs[0]]
  if source.dtype == np.float32:
    raise ValueError('the integer runtime takes integer inputs; QUANTIZE from float32 is not '
                     'part of a fully integer file')
  multiplier, shift = fp.quantize_multiplier(float(source.scale[0]) / float(output.scale[0]))
  x = values[op.inputs[0]] - source.zero_point[0]
  return _clamp(fp.multiply_by_multiplier(x, multiplier, shift) + output.zero_point[0], output)


def _layout(op: OperatorInfo, tensors: list[TensorInfo], values: dict) -> np.ndarray:
  x = values[op.inputs[0]]
  output = tensors[op.outputs[0]]
  if op.name == 'MAX_POOL_2D':
    o = op.options
    (k_h, k_w), (s_h, s_w) = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
    out_h, out_w = (x.shape[1] - k_h) // s_h + 1, (x.shape[2] - k_w) // s_w + 1
    windows = [x[:, i:i + (out_h - 1) * s_h + 1:s_h, j:j + (out_w - 1) * s_w + 1:s_w]
               for i in range(k_h) for j in range(k_w)]
    return _clamp(np.max(windows, axis=0), output, o.FusedActivationFunction())
  if op.name == 'PAD':
    paddings = tensors[op.inputs[1]].data.reshape(-1, 2)
    pads = [(0, 0)] + [tuple(int(v) for v in row) for row in paddings[1:]]
    return np.pad(x, pads, constant_values=int(output.zero_point[0]))
  if op.name == 'SLICE':
    begin = tensors[op.inputs[1]].data.reshape(-1)
    size = tensors[op.inputs[2]].data.reshape(-1)
    index = tuple([slice(None)] + [slice(int(b), None if s < 0 else int(b + s))
                                   for b, s in zip(begin[1:], size[1:])])
    return x[index]
  if op.name == 'CONCATENATION':
    for i in op.inputs:
      if (tensors[i].scale[0], tensors[i].zero_point[0]) != (output.scale[0],
                                                            output.zero_point[0]):
        raise ValueError('CONCATENATION of differently quantized tensors is not supported')
    return np.concatenate([values[i] for i in op.inputs], axis=op.options.Axis())
  raise ValueError(f'{op.name} is not evaluated by asc_jax\'s integer runtime')


KERNELS = {'CONV_2D': _conv, 'DEPTHWISE_CONV_2D': _conv, 'ADD': _add_or_sub, 'SUB': _add_or_sub,
           'MUL': _mul, 'MEAN': _mean, 'RSQRT': _rsqrt, 'LOGISTIC': _logistic,
           'QUANTIZE': _quantize}


def run(model: bytes, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
  """The file's integer outputs [N, ...] for integer inputs [N, ...] (its input without batch 1)."""
  tensors, operators, input_index, output_index = read(model)
  constants = {index: tensor.data.astype(np.int64) for index, tensor in enumerate(tensors)
               if tensor.data is not None}
  outputs = []
  for start in range(0, len(inputs), batch_size):
    values = dict(constants)
    values[input_index] = (np.asarray(inputs[start:start + batch_size], np.int64)
              .reshape((-1,) + tensors[input_index].shape[1:]))
    for op in operators:
      kernel = KERNELS.get(op.name, _layout)
      values[op.outputs[0]] = kernel(op, tensors, values)
    outputs.append(values[output_index].reshape(len(values[input_index]), -1))
  return np.concatenate(outputs).astype(tensors[output_index].dtype)
