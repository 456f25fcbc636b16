"""The int8 export as a fully integer TFLite model that TensorFlow Lite for Microcontrollers runs.

Route: the flatbuffer is written directly (asc_jax.export.flatbuffer), not converted from a
TensorFlow or JAX graph, so the int8 kernels and the activation scales learned by QAT go into the
file unchanged; no TensorFlow is needed.

The model (batch 1):
  input   int8 [1, F, T, 1]: the log-mel after the input ResNorm, quantized with the stem's QAT
          scale, zero point 0 (`input_values`). The input ResNorm is part of the front end because
          it works on raw log-mels, whose per-bin offsets of tens of dB would cost most of int8's
          resolution before normalization; the manifest and the export report describe it.
  body    CONV_2D / DEPTHWISE_CONV_2D with int8 per-channel weights; ResNorm as MEAN, SUB, MUL,
          ADD, RSQRT; SubSpectralNorm as per-sub-band depthwise convolutions (PAD, SLICE,
          CONCATENATION); SiLU as LOGISTIC * x; MAX_POOL_2D; QUANTIZE between widths.
  output  [1, classes] logits (int16 or int8): dequantize with the output's scale and zero point.
Activation widths (`activations`): every convolution input is int8 at the scale QAT learned, in
all of them; 'int8' (default) makes every tensor int8; 'mixed' keeps convolutions int8 x int8 ->
int8 (int32 biases) and holds the sums, ResNorm, SiLU and logits, which the NumPy runtime computes
in float32, in int16; 'int16' also runs the convolutions 16x8 (int16 activations made exactly
from the int8 inputs, int64 biases), so that only int16 roundings separate it from the runtime.
asc_jax/export/tflite_integer.py computes every mode's integers exactly as TFLite Micro does;
ai-edge-litert does too in 'int8' (its int16 RSQRT rounds its own way in the other two).
Every builtin used is in TFLite Micro's op resolver (tests run it with the tflite-micro Python
interpreter and with ai-edge-litert). ResNorm's eps is added in int16 (it is below int8
resolution and left out there; a var that quantizes to 0 saturates RSQRT at its range).
'float' (not fully integer) is asc_jax/export/tflite_float.py: int8 weights and int8 convolution
inputs, float32 kernels computing the NumPy runtime's own arithmetic, for exact agreement.
"""

import dataclasses

import numpy as np
import tflite

from asc_jax.export import flatbuffer
from asc_jax.export import graph as graph_lib
from asc_jax.export import int8_scales
from asc_jax.export import tflite_float

OP = tflite.BuiltinOperator
OPTIONS = tflite.BuiltinOptions
ACTIVATIONS = {'none': tflite.ActivationFunctionType.NONE,
               'relu': tflite.ActivationFunctionType.RELU}


@dataclasses.dataclass
class TfliteModel:
  """The .tflite bytes and what a caller needs to feed and read it."""
  data: bytes
  input_scale: int8_scales.TensorScale
  output_scale: int8_scales.TensorScale
  input_shape: tuple[int, ...]
  clipped_weights: int
  scales: dict[str, int8_scales.TensorScale]
  op_counts: dict[str, int]


ELEMENTWISE = ('mean', 'add', 'sub', 'mul', 'rsqrt', 'logistic')


class _Lowering(flatbuffer.GraphWriter):
  def __init__(self, scales: dict[str, int8_scales.TensorScale], shapes: dict[str, tuple],
               ranges: dict[str, tuple[float, float]], conv_dtype: str = 'int8'):
    super().__init__()
    self.conv_dtype = conv_dtype
    self.scales = scales
    self.shapes = shapes
    self.ranges = ranges
    self.converted: dict[tuple[str, str], int] = {}

  def quantized_tensor(self, name: str, scale: int8_scales.TensorScale) -> int:
    return self.add(flatbuffer.Tensor(
        name, self.shapes[name.split('#')[0].split('+')[0]], np.dtype(scale.dtype),
        quantization=flatbuffer.Quantization(np.array([scale.scale], np.float32),
                                             np.array([scale.zero_point], np.int64))))

  def activation(self, name: str) -> int:
    if name not in self.index:
      self.index[name] = self.quantized_tensor(name, self.scales[name])
    return self.index[name]

  def as_dtype(self, name: str, dtype: str) -> int:
    """`name` in `dtype`: the tensor itself, or a QUANTIZE of it (made once)."""
    scale = self.scales[name]
    if scale.dtype == dtype:
      return self.activation(name)
    if (name, dtype) not in self.converted:
      if (scale.dtype, dtype) == ('int8', 'int16'):   # exact: q16 = 128 * (q8 - zero point)
        target = int8_scales.TensorScale(scale.scale / 128, 0, scale.source, 'int16')
      else:
        info = np.iinfo(scale.dtype)
        target = int8_scales.calibrated((info.min - scale.zero_point) * scale.scale,
                                        (info.max - scale.zero_point) * scale.scale, dtype)
      index = self.quantized_tensor(f'{name}#{dtype}', target)
      self.op(OP.QUANTIZE, [self.activation(name)], [index])
      self.converted[(name, dtype)] = index
    return self.converted[(name, dtype)]

  def constant(self, name: str, value: np.ndarray, dtype: str) -> int:
    """A per-tensor int8 / int16 constant holding `value` (max |value| at the type's max)."""
    value = np.asarray(value, np.float32)
    bound = np.iinfo(dtype).max
    scale = float(np.max(np.abs(value))) / bound or 1.0
    data = np.clip(np.round(value / scale), -bound, bound).astype(dtype).reshape(
        (1,) * 4 if value.size == 1 else value.shape)
    return self.add(flatbuffer.Tensor(name, data.shape, np.dtype(dtype), data=data,
                                      quantization=flatbuffer.Quantization(
                                          np.array([scale], np.float32), np.zeros(1, np.int64))))

  def pad(self, source: int, name: str, padding) -> int:
    shape = list(self.tensors[source].shape)
    shape[1] += sum(padding[0])
    shape[2] += sum(padding[1])
    source_tensor = self.tensors[source]
    output = self.add(dataclasses.replace(source_tensor, name=name, shape=tuple(shape)))
    paddings = self.int32(f'{name}/paddings', [[0, 0], list(padding[0]), list(padding[1]), [0, 0]])
    self.op(OP.PAD, [source, paddings], [output], OPTIONS.PadOptions,
            flatbuffer.options(tflite.PadOptionsStart, tflite.PadOptionsEnd))
    return output

  def conv(self, op: graph_lib.Op) -> None:
    """CONV_2D / DEPTHWISE_CONV_2D: int8 x int8 (int32 bias), or 16x8 (int16 activations made
    exactly from the int8 QAT input, int64 bias) when conv_dtype is int16."""
    a = op.attrs
    wide = self.conv_dtype == 'int16'
    source = self.as_dtype(op.inputs[0], self.conv_dtype)
    kernel = a['kernel']
    k_h, k_w = kernel.shape[:2]
    (top, bottom), (left, right) = a['padding']
    strides = a['strides']
    same = (strides == (1, 1) and (top, bottom) == ((k_h - 1) // 2, k_h // 2)
            and (left, right) == ((k_w - 1) // 2, k_w // 2))
    if not same and (top, bottom, left, right) != (0, 0, 0, 0):
      source = self.pad(source, f'{op.output}/padded', a['padding'])
    padding = tflite.Padding.SAME if same and (k_h, k_w) != (1, 1) else tflite.Padding.VALID
    weight_scale = a['weight_scale'].astype(np.float32)
    input_scale = np.float32(a['input_scale'] / 128 if wide else a['input_scale'])
    bias_scale = (weight_scale.astype(np.float64) * float(input_scale)).astype(np.float32)
    bias = np.round(a['bias'].astype(np.float64) / bias_scale.astype(np.float64))
    bias = (bias.astype(np.int64) if wide else
            np.clip(bias, -2**31, 2**31 - 1).astype(np.int32))
    channels = kernel.shape[-1]
    if a['depthwise']:
      filter_values = kernel.transpose(2, 0, 1, 3)      # [1, kh, kw, C]
      axis = 3
    else:
      filter_values = kernel.transpose(3, 0, 1, 2)      # [C_out, kh, kw, C_in]
      axis = 0
    filter_index = self.add(flatbuffer.Tensor(
        f'{a["layer"]}/kernel', filter_values.shape, np.dtype(np.int8), data=filter_values,
        quantization=flatbuffer.Quantization(weight_scale, np.zeros(channels, np.int64), axis)))
    bias_index = self.add(flatbuffer.Tensor(
        f'{a["layer"]}/bias', (channels,), bias.dtype, data=bias,
        quantization=flatbuffer.Quantization(bias_scale, np.zeros(channels, np.int64), 0)))
    final = self.activation(op.output)
    output = final
    if self.scales[op.output].dtype != self.conv_dtype:   # a 16x8 result feeding a QAT input
      output = self.quantized_tensor(f'{op.output}#{self.conv_dtype}', int8_scales.calibrated(
          *self.ranges[op.output], self.conv_dtype))
    activation = ACTIVATIONS[a['activation']]
    if a['depthwise']:
      self.op(OP.DEPTHWISE_CONV_2D, [source, filter_index, bias_index], [output],
              OPTIONS.DepthwiseConv2DOptions,
              flatbuffer.options(tflite.DepthwiseConv2DOptionsStart,
                                 tflite.DepthwiseConv2DOptionsEnd, Padding=padding,
                                 StrideW=strides[1], StrideH=strides[0], DepthMultiplier=1,
                                 FusedActivationFunction=activation, DilationWFactor=1,
                                 DilationHFactor=1))
    else:
      self.op(OP.CONV_2D, [source, filter_index, bias_index], [output], OPTIONS.Conv2DOptions,
              flatbuffer.options(tflite.Conv2DOptionsStart, tflite.Conv2DOptionsEnd,
                                 Padding=padding, StrideW=strides[1], StrideH=strides[0],
                                 FusedActivationFunction=activation, DilationWFactor=1,
                                 DilationHFactor=1))
    if output != final:
      self.op(OP.QUANTIZE, [output], [final])

  def lower(self, op: graph_lib.Op, constants: dict[str, np.ndarray]) -> None:
    a = op.attrs
    if op.kind == 'conv':
      return self.conv(op)

    compute = None
    if op.kind in ELEMENTWISE:
      dtypes = {self.scales[name].dtype for name in (*op.inputs, op.output) if name in self.scales}
      compute = 'int16' if 'int16' in dtypes else 'int8'

    def operand(name: str) -> int:
      if name in constants:
        key = (name, compute)
        if key not in self.converted:
          self.converted[key] = self.constant(f'{name}#{compute}', constants[name], compute)
        return self.converted[key]
      return self.as_dtype(name, compute) if compute else self.activation(name)

    inputs = [operand(name) for name in op.inputs]
    final = self.activation(op.output)
    output = final
    if compute and self.scales[op.output].dtype != compute:   # compute wide, then narrow
      output = self.quantized_tensor(f'{op.output}#{compute}',
                                     int8_scales.calibrated(*self.ranges[op.output], compute))
    activation = ACTIVATIONS[a.get('activation', 'none')]
    if self.layout_op(op.kind, a, inputs, output, activation):
      pass
    elif op.kind == 'add':
      self.op(OP.ADD, inputs, [output], OPTIONS.AddOptions,
              flatbuffer.options(tflite.AddOptionsStart, tflite.AddOptionsEnd,
                                 FusedActivationFunction=activation))
    elif op.kind == 'sub':
      self.op(OP.SUB, inputs, [output], OPTIONS.SubOptions,
              flatbuffer.options(tflite.SubOptionsStart, tflite.SubOptionsEnd))
    elif op.kind == 'mul':
      self.op(OP.MUL, inputs, [output], OPTIONS.MulOptions,
              flatbuffer.options(tflite.MulOptionsStart, tflite.MulOptionsEnd))
    elif op.kind == 'rsqrt':
      source = inputs[0]
      if compute == 'int16':   # eps below an int16 step still moves rounding, on average right
        shifted = self.quantized_tensor(f'{op.inputs[0]}+eps', self.scales[op.inputs[0]])
        eps = self.constant(f'{op.output}/eps', np.float32(a['eps']), 'int16')
        self.op(OP.ADD, [source, eps], [shifted], OPTIONS.AddOptions,
                flatbuffer.options(tflite.AddOptionsStart, tflite.AddOptionsEnd))
        source = shifted
      self.op(OP.RSQRT, [source], [output])
    elif op.kind == 'requantize':
      self.op(OP.QUANTIZE, inputs, [output])
    elif op.kind == 'logistic':
      self.op(OP.LOGISTIC, inputs, [output])
    else:
      raise ValueError(f'no TFLite lowering for op kind {op.kind!r}')
    if output != final:
      self.op(OP.QUANTIZE, [output], [final])


def build_tflite(graph: graph_lib.Graph, ranges: dict[str, tuple[float, float]],
                 shapes: dict[str, tuple], description: str, activations: str = 'int8'
                 ) -> TfliteModel:
  """The TFLite model of `graph` from the stem's input on. `ranges`: calibrated (min, max) of the
  graph's tensors; `shapes`: their shapes with batch 1; `activations`: int8 | mixed | int16 | float
  (see int8_scales.assign)."""
  if activations == 'float':
    return _build_float(graph, ranges, shapes, description)
  ops = graph.ops_after(graph_lib.STEM_INPUT)
  scales = int8_scales.assign(graph, ops, ranges, activations)
  lowering = _Lowering(scales, shapes, ranges, 'int16' if activations == 'int16' else 'int8')
  input_index = lowering.activation(graph_lib.STEM_INPUT)
  for op in ops:
    lowering.lower(op, graph.constants)
  output_index = lowering.index[graph.output]
  data = flatbuffer.serialize(lowering.tensors, lowering.operators, [input_index], [output_index],
                              description)
  return TfliteModel(data=data, input_scale=scales[graph_lib.STEM_INPUT],
                     output_scale=scales[graph.output], input_shape=shapes[graph_lib.STEM_INPUT],
                     clipped_weights=graph.clipped_weights, scales=scales,
                     op_counts=lowering.op_counts)


def _build_float(graph: graph_lib.Graph, ranges, shapes, description: str) -> TfliteModel:
  """The float-kernel variant (see tflite_float.py): the int8 runtime's arithmetic."""
  del ranges   # nothing calibrated: every rounding is one the int8 model itself makes
  stem_scale = next(float(op.attrs['input_scale']) for op in graph.ops
                    if op.kind == 'conv' and op.inputs[0] == graph_lib.STEM_INPUT)
  lowering, input_index, output_index = tflite_float.lower(graph, shapes, stem_scale)
  data = flatbuffer.serialize(lowering.tensors, lowering.operators, [input_index], [output_index],
                              description)
  input_scale = int8_scales.TensorScale(stem_scale, 0, 'qat')
  scales = {op.inputs[0]: int8_scales.TensorScale(float(op.attrs['input_scale']), 0, 'qat')
            for op in graph.ops if op.kind == 'conv'}   # the only roundings: as the runtime's
  return TfliteModel(data=data, input_scale=input_scale,
                     output_scale=int8_scales.TensorScale(1.0, 0, 'fixed', 'float32'),
                     input_shape=shapes[graph_lib.STEM_INPUT],
                     clipped_weights=graph.clipped_weights,
                     scales=scales, op_counts=lowering.op_counts)


def input_values(graph: graph_lib.Graph, logmel: np.ndarray, scale: int8_scales.TensorScale
                 ) -> np.ndarray:
  """The model's int8 input [N, F, T, 1] for log-mels [N, F, T]: the documented front end
  (input ResNorm in float32, then quantized with the stem's QAT scale)."""
  normalized = graph_lib.evaluate(graph, logmel, stop=graph_lib.STEM_INPUT)[graph_lib.STEM_INPUT]
  return graph_lib.quantize_input(normalized, np.float32(scale.scale)).astype(np.int8)
