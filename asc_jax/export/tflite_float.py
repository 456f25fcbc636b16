"""TFLite lowering with float32 kernels that computes the int8 model's own arithmetic (--tflite_
activations=float): int8 weights and int8 convolution inputs, float32 everything between.

Why: the int8 NumPy runtime (asc_jax/compress/int8_runtime.py), like quantization-aware training,
rounds only the input of every convolution (int8, the QAT scale) and keeps the tensors between
convolutions in float32. A fully integer graph must also round those (int8 or int16), and TFLite's
integer MEAN, LOGISTIC and RSQRT kernels round differently from an exact computation; a one-step
difference at one convolution input then spreads through the nine blocks, so the fully integer
graph agrees with the runtime on only part of the clips of a barely trained model. This graph
does instead, with TFLite Micro's float reference kernels, what the runtime does, in its order:

  convolution   q = QUANTIZE(MUL(x, float32(1 / s)))   int8 at scale 1: clip(round(x / s))
                DEQUANTIZE(q), DEQUANTIZE(int8 kernel, scale 1)   exact integers as float32
                CONV_2D / DEPTHWISE_CONV_2D (float32, zero bias): the exact integer sum (< 2**24)
                MUL(s), MUL(per-channel multiplier or kernel scale), ADD(offset or bias) [+ RELU]
  the rest      MEAN, SUB, MUL, ADD, RSQRT (after ADD eps), LOGISTIC, MAX_POOL_2D, PAD, SLICE,
                CONCATENATION in float32, as the runtime computes them.
Input: int8 [1, F, T, 1] at the stem's QAT scale (as the integer variants); output float32 logits.
Not "fully integer": the kernels are float32 (no int8 speed-up; arena about 4x the int8 one).
"""

import numpy as np
import tflite

from asc_jax.export import flatbuffer
from asc_jax.export import graph as graph_lib
from asc_jax.export import int8_scales

OP = tflite.BuiltinOperator
OPTIONS = tflite.BuiltinOptions
FLOAT = np.dtype(np.float32)
ACTIVATIONS = {'none': tflite.ActivationFunctionType.NONE,
               'relu': tflite.ActivationFunctionType.RELU}
INTEGER_SCALE = int8_scales.TensorScale(1.0, 0, 'fixed')   # int8 tensors holding plain integers


class FloatLowering(flatbuffer.GraphWriter):
  def __init__(self, shapes: dict[str, tuple]):
    super().__init__()
    self.shapes = shapes
    self.constants: dict[str, int] = {}

  def activation(self, name: str, shape=None) -> int:
    if name not in self.index:
      self.index[name] = self.add(flatbuffer.Tensor(name, tuple(shape or self.shapes[name]),
                                                    FLOAT))
    return self.index[name]

  def int8(self, name: str, shape, scale: int8_scales.TensorScale, data=None) -> int:
    return self.add(flatbuffer.Tensor(
        name, tuple(shape), np.dtype(np.int8), data=data,
        quantization=flatbuffer.Quantization(np.array([scale.scale], np.float32),
                                             np.array([scale.zero_point], np.int64))))

  def float_constant(self, name: str, value) -> int:
    value = np.asarray(value, np.float32)
    if value.ndim == 0:
      value = value.reshape((1,) * 4)
    return self.add(flatbuffer.Tensor(name, value.shape, FLOAT, data=value))

  def binary(self, code: int, a: int, b: int, output: int, activation: str = 'none') -> int:
    starts = {OP.ADD: (OPTIONS.AddOptions, tflite.AddOptionsStart, tflite.AddOptionsEnd),
              OP.MUL: (OPTIONS.MulOptions, tflite.MulOptionsStart, tflite.MulOptionsEnd),
              OP.SUB: (OPTIONS.SubOptions, tflite.SubOptionsStart, tflite.SubOptionsEnd)}
    options_type, start, end = starts[code]
    self.op(code, [a, b], [output], options_type,
            flatbuffer.options(start, end, FusedActivationFunction=ACTIVATIONS[activation]))
    return output

  def temporary(self, name: str, shape) -> int:
    return self.add(flatbuffer.Tensor(name, tuple(shape), FLOAT))

  def conv(self, op: graph_lib.Op) -> None:
    a = op.attrs
    layer, output_name = a['layer'], op.output
    source = self.activation(op.inputs[0])
    in_shape = self.shapes[op.inputs[0]]
    # int8 input exactly as the runtime rounds it: clip(round(x * float32(1 / s)), -128, 127).
    inverse = self.float_constant(f'{output_name}/inverse_input_scale',
                                  np.float32(1) / np.float32(a['input_scale']))
    scaled = self.binary(OP.MUL, source, inverse, self.temporary(f'{output_name}/x_over_s',
                                                                 in_shape))
    q = self.int8(f'{output_name}/int8_input', in_shape, INTEGER_SCALE)
    self.op(OP.QUANTIZE, [scaled], [q])
    x = self.temporary(f'{output_name}/int8_input_as_float', in_shape)
    self.op(OP.DEQUANTIZE, [q], [x])
    kernel = a['kernel']
    k_h, k_w = kernel.shape[:2]
    (top, bottom), (left, right) = a['padding']
    strides = a['strides']
    if (top, bottom, left, right) != (0, 0, 0, 0):   # explicit PAD (zeros, as the runtime pads)
      shape = list(in_shape)
      shape[1] += top + bottom
      shape[2] += left + right
      padded = self.temporary(f'{output_name}/padded', shape)
      paddings = self.int32(f'{output_name}/paddings', [[0, 0], [top, bottom], [left, right],
                                                        [0, 0]])
      self.op(OP.PAD, [x, paddings], [padded], OPTIONS.PadOptions,
              flatbuffer.options(tflite.PadOptionsStart, tflite.PadOptionsEnd))
      x = padded
    if a['depthwise']:
      values = kernel.transpose(2, 0, 1, 3)      # [1, kh, kw, C]
    else:
      values = kernel.transpose(3, 0, 1, 2)      # [C_out, kh, kw, C_in]
    stored = self.int8(f'{layer}/kernel', values.shape, INTEGER_SCALE,
                       data=np.ascontiguousarray(values))
    weights = self.temporary(f'{output_name}/kernel_as_float', values.shape)
    self.op(OP.DEQUANTIZE, [stored], [weights])
    channels = kernel.shape[-1]
    zero_bias = self.float_constant(f'{layer}/zero_bias', np.zeros(channels, np.float32))
    out_shape = self.shapes[output_name]
    total = self.temporary(f'{output_name}/integer_sum', out_shape)
    common = dict(Padding=tflite.Padding.VALID, StrideW=strides[1], StrideH=strides[0],
                  FusedActivationFunction=ACTIVATIONS['none'], DilationWFactor=1,
                  DilationHFactor=1)
    if a['depthwise']:
      self.op(OP.DEPTHWISE_CONV_2D, [x, weights, zero_bias], [total],
              OPTIONS.DepthwiseConv2DOptions,
              flatbuffer.options(tflite.DepthwiseConv2DOptionsStart,
                                 tflite.DepthwiseConv2DOptionsEnd, DepthMultiplier=1, **common))
    else:
      self.op(OP.CONV_2D, [x, weights, zero_bias], [total], OPTIONS.Conv2DOptions,
              flatbuffer.options(tflite.Conv2DOptionsStart, tflite.Conv2DOptionsEnd, **common))
    # (sum * s) * multiplier + offset: the runtime's float32 operations in its order.
    input_scale = self.float_constant(f'{output_name}/input_scale', np.float32(a['input_scale']))
    times_s = self.binary(OP.MUL, total, input_scale,
                          self.temporary(f'{output_name}/times_input_scale', out_shape))
    scale = self.float_constant(f'{output_name}/channel_scale', a['weight_scale'])
    scaled_sum = self.binary(OP.MUL, times_s, scale,
                             self.temporary(f'{output_name}/times_channel_scale', out_shape))
    bias = self.float_constant(f'{output_name}/offset', a['bias'])
    self.binary(OP.ADD, scaled_sum, bias, self.activation(output_name), a['activation'])

  def lower(self, op: graph_lib.Op, constants: dict[str, np.ndarray]) -> None:
    a = op.attrs
    if op.kind == 'conv':
      return self.conv(op)

    def operand(name: str) -> int:
      if name in constants:
        if name not in self.constants:
          self.constants[name] = self.float_constant(name, constants[name])
        return self.constants[name]
      return self.activation(name)

    inputs = [operand(name) for name in op.inputs]
    if op.kind == 'requantize':   # identity in float32: the next convolution rounds
      self.index[op.output] = inputs[0]
      return None
    output = self.activation(op.output)
    if self.layout_op(op.kind, a, inputs, output):
      return None
    if op.kind in ('add', 'sub', 'mul'):
      code = {'add': OP.ADD, 'sub': OP.SUB, 'mul': OP.MUL}[op.kind]
      self.binary(code, inputs[0], inputs[1], output, a.get('activation', 'none'))
    elif op.kind == 'rsqrt':   # 1 / sqrt(var + eps), as the runtime
      shifted = self.binary(OP.ADD, inputs[0], self.float_constant(f'{op.output}/eps', a['eps']),
                            self.temporary(f'{op.inputs[0]}+eps', self.shapes[op.inputs[0]]))
      self.op(OP.RSQRT, [shifted], [output])
    elif op.kind == 'logistic':
      self.op(OP.LOGISTIC, inputs, [output])
    else:
      raise ValueError(f'no float TFLite lowering for op kind {op.kind!r}')
    return None


def lower(graph: graph_lib.Graph, shapes: dict[str, tuple], input_scale: float):
  """(lowering, input tensor index, output tensor index) of the graph from the stem's input on;
  the input is int8 at `input_scale` (the stem's QAT scale), dequantized first."""
  lowering = FloatLowering(shapes)
  stem_shape = shapes[graph_lib.STEM_INPUT]
  input_index = lowering.int8(f'{graph_lib.STEM_INPUT}#int8', stem_shape,
                              int8_scales.TensorScale(float(input_scale), 0, 'qat'))
  lowering.op(OP.DEQUANTIZE, [input_index], [lowering.activation(graph_lib.STEM_INPUT)])
  for op in graph.ops_after(graph_lib.STEM_INPUT):
    lowering.lower(op, graph.constants)
  return lowering, input_index, lowering.index[graph.output]
