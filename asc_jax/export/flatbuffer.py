"""A minimal TFLite model writer: tensors, constant buffers, builtin operators -> .tflite bytes.

Written with the `flatbuffers` builder and the schema classes generated from TensorFlow Lite's
schema.fbs (the `tflite` PyPI package); no TensorFlow. One subgraph, builtin ops only, constant
data 16-byte aligned (what TFLite Micro's kernels expect of weights read in place).
"""

import dataclasses
from typing import Any, Callable, Optional

import flatbuffers
import numpy as np
import tflite

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b'TFL3'
BUFFER_ALIGNMENT = 16

TENSOR_TYPES = {np.dtype(np.float32): tflite.TensorType.FLOAT32,
                np.dtype(np.int8): tflite.TensorType.INT8,
                np.dtype(np.int16): tflite.TensorType.INT16,
                np.dtype(np.int32): tflite.TensorType.INT32,
                np.dtype(np.int64): tflite.TensorType.INT64}


@dataclasses.dataclass
class Quantization:
  scale: np.ndarray        # float32 [1] per tensor, or [channels]
  zero_point: np.ndarray   # int64, same length
  axis: int = 0


@dataclasses.dataclass
class Tensor:
  name: str
  shape: tuple[int, ...]
  dtype: np.dtype
  data: Optional[np.ndarray] = None
  quantization: Optional[Quantization] = None


@dataclasses.dataclass
class Operator:
  opcode: int                      # tflite.BuiltinOperator.*
  inputs: list[int]
  outputs: list[int]
  options_type: int = 0            # tflite.BuiltinOptions.*
  options: Optional[Callable[[flatbuffers.Builder], int]] = None   # writes the options table


class GraphWriter:
  """The tensors and operators of one subgraph as they are appended, and a count per op kind."""

  def __init__(self):
    self.tensors: list[Tensor] = []
    self.index: dict[str, int] = {}
    self.operators: list[Operator] = []
    self.op_counts: dict[str, int] = {}

  def add(self, tensor: Tensor) -> int:
    self.tensors.append(tensor)
    return len(self.tensors) - 1

  def int32(self, name: str, values) -> int:
    values = np.asarray(values, np.int32)
    return self.add(Tensor(name, values.shape, np.dtype(np.int32), data=values))

  def op(self, code: int, inputs: list[int], outputs: list[int], options_type: int = 0,
         options=None) -> None:
    self.operators.append(Operator(code, inputs, outputs, options_type, options))
    name = next(key for key, value in vars(tflite.BuiltinOperator).items() if value == code)
    self.op_counts[name] = self.op_counts.get(name, 0) + 1

  def layout_op(self, kind: str, attrs: dict, inputs: list[int], output: int,
                activation: int = tflite.ActivationFunctionType.NONE) -> bool:
    """Appends the op of a graph op that only moves or selects values (mean, pad, slice, concat,
    max_pool: the same in every number format); False for any other kind."""
    op, kinds = tflite.BuiltinOperator, tflite.BuiltinOptions
    if kind == 'mean':
      axes = self.int32(f'{self.tensors[output].name}/axes', list(attrs['axes']))
      self.op(op.MEAN, [inputs[0], axes], [output], kinds.ReducerOptions,
              options(tflite.ReducerOptionsStart, tflite.ReducerOptionsEnd,
                       KeepDims=bool(attrs.get('keepdims', True))))
    elif kind == 'pad':
      paddings = self.int32(f'{self.tensors[output].name}/paddings',
                            [[0, 0], list(attrs['padding'][0]), list(attrs['padding'][1]), [0, 0]])
      self.op(op.PAD, [inputs[0], paddings], [output], kinds.PadOptions,
              options(tflite.PadOptionsStart, tflite.PadOptionsEnd))
    elif kind == 'slice':
      begin, size = [0, 0, 0, 0], [-1, -1, -1, -1]
      begin[attrs['axis']], size[attrs['axis']] = attrs['begin'], attrs['size']
      name = self.tensors[output].name
      self.op(op.SLICE, [inputs[0], self.int32(f'{name}/begin', begin),
                         self.int32(f'{name}/size', size)], [output], kinds.SliceOptions,
              options(tflite.SliceOptionsStart, tflite.SliceOptionsEnd))
    elif kind == 'concat':
      self.op(op.CONCATENATION, inputs, [output], kinds.ConcatenationOptions,
              options(tflite.ConcatenationOptionsStart, tflite.ConcatenationOptionsEnd,
                       Axis=attrs['axis'], FusedActivationFunction=activation))
    elif kind == 'max_pool':
      size = attrs['size']
      self.op(op.MAX_POOL_2D, inputs, [output], kinds.Pool2DOptions,
              options(tflite.Pool2DOptionsStart, tflite.Pool2DOptionsEnd,
                       Padding=tflite.Padding.VALID, StrideW=size, StrideH=size,
                       FilterWidth=size, FilterHeight=size))
    else:
      return False
    return True


def _vector(builder: flatbuffers.Builder, values, kind: str) -> int:
  """A vector of int32 ('i'), int64 ('q'), float32 ('f') or uint8 ('B') values."""
  dtype = {'i': np.int32, 'q': np.int64, 'f': np.float32, 'B': np.uint8}[kind]
  return builder.CreateNumpyVector(np.asarray(values, dtype).reshape(-1))


def _aligned_bytes(builder: flatbuffers.Builder, data: bytes) -> int:
  builder.StartVector(1, len(data), BUFFER_ALIGNMENT)
  builder.head = builder.head - len(data)
  builder.Bytes[builder.head:builder.head + len(data)] = data
  return builder.EndVector()


def _quantization(builder: flatbuffers.Builder, quantization: Quantization) -> int:
  scale = _vector(builder, quantization.scale, 'f')
  zero_point = _vector(builder, quantization.zero_point, 'q')
  tflite.QuantizationParametersStart(builder)
  tflite.QuantizationParametersAddScale(builder, scale)
  tflite.QuantizationParametersAddZeroPoint(builder, zero_point)
  tflite.QuantizationParametersAddQuantizedDimension(builder, quantization.axis)
  return tflite.QuantizationParametersEnd(builder)


def serialize(tensors: list[Tensor], operators: list[Operator], inputs: list[int],
              outputs: list[int], description: str = '') -> bytes:
  """The .tflite file of one subgraph. Constant tensors share a buffer when their bytes match."""
  builder = flatbuffers.Builder(1 << 16)
  buffer_data: list[bytes] = [b'']          # buffer 0: the empty sentinel for activations
  buffer_index: dict[bytes, int] = {}
  tensor_buffers = []
  for tensor in tensors:
    if tensor.data is None:
      tensor_buffers.append(0)
      continue
    data = np.ascontiguousarray(tensor.data, tensor.dtype).tobytes()
    if data not in buffer_index:
      buffer_index[data] = len(buffer_data)
      buffer_data.append(data)
    tensor_buffers.append(buffer_index[data])

  tensor_offsets = []
  for tensor, buffer in zip(tensors, tensor_buffers):
    name = builder.CreateString(tensor.name)
    shape = _vector(builder, tensor.shape, 'i')
    quantization = _quantization(builder, tensor.quantization) if tensor.quantization else None
    tflite.TensorStart(builder)
    tflite.TensorAddShape(builder, shape)
    tflite.TensorAddType(builder, TENSOR_TYPES[np.dtype(tensor.dtype)])
    tflite.TensorAddBuffer(builder, buffer)
    tflite.TensorAddName(builder, name)
    if quantization is not None:
      tflite.TensorAddQuantization(builder, quantization)
    tensor_offsets.append(tflite.TensorEnd(builder))

  opcodes = sorted({op.opcode for op in operators})
  opcode_index = {code: index for index, code in enumerate(opcodes)}
  operator_offsets = []
  for op in operators:
    options = op.options(builder) if op.options is not None else None
    op_inputs = _vector(builder, op.inputs, 'i')
    op_outputs = _vector(builder, op.outputs, 'i')
    tflite.OperatorStart(builder)
    tflite.OperatorAddOpcodeIndex(builder, opcode_index[op.opcode])
    tflite.OperatorAddInputs(builder, op_inputs)
    tflite.OperatorAddOutputs(builder, op_outputs)
    if options is not None:
      tflite.OperatorAddBuiltinOptionsType(builder, op.options_type)
      tflite.OperatorAddBuiltinOptions(builder, options)
    operator_offsets.append(tflite.OperatorEnd(builder))

  def offsets_vector(start: Callable, offsets: list[int]) -> int:
    start(builder, len(offsets))
    for offset in reversed(offsets):
      builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()

  tensors_vector = offsets_vector(tflite.SubGraphStartTensorsVector, tensor_offsets)
  operators_vector = offsets_vector(tflite.SubGraphStartOperatorsVector, operator_offsets)
  subgraph_inputs = _vector(builder, inputs, 'i')
  subgraph_outputs = _vector(builder, outputs, 'i')
  subgraph_name = builder.CreateString('main')
  tflite.SubGraphStart(builder)
  tflite.SubGraphAddTensors(builder, tensors_vector)
  tflite.SubGraphAddInputs(builder, subgraph_inputs)
  tflite.SubGraphAddOutputs(builder, subgraph_outputs)
  tflite.SubGraphAddOperators(builder, operators_vector)
  tflite.SubGraphAddName(builder, subgraph_name)
  subgraph = tflite.SubGraphEnd(builder)

  code_offsets = []
  for code in opcodes:
    tflite.OperatorCodeStart(builder)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, min(code, 127))
    tflite.OperatorCodeAddBuiltinCode(builder, code)
    tflite.OperatorCodeAddVersion(builder, 1)
    code_offsets.append(tflite.OperatorCodeEnd(builder))

  buffer_offsets = []
  for data in buffer_data:
    vector = _aligned_bytes(builder, data) if data else None
    tflite.BufferStart(builder)
    if vector is not None:
      tflite.BufferAddData(builder, vector)
    buffer_offsets.append(tflite.BufferEnd(builder))

  codes_vector = offsets_vector(tflite.ModelStartOperatorCodesVector, code_offsets)
  subgraphs_vector = offsets_vector(tflite.ModelStartSubgraphsVector, [subgraph])
  buffers_vector = offsets_vector(tflite.ModelStartBuffersVector, buffer_offsets)
  description_offset = builder.CreateString(description)
  tflite.ModelStart(builder)
  tflite.ModelAddVersion(builder, SCHEMA_VERSION)
  tflite.ModelAddOperatorCodes(builder, codes_vector)
  tflite.ModelAddSubgraphs(builder, subgraphs_vector)
  tflite.ModelAddDescription(builder, description_offset)
  tflite.ModelAddBuffers(builder, buffers_vector)
  model = tflite.ModelEnd(builder)
  builder.Finish(model, file_identifier=FILE_IDENTIFIER)
  return bytes(builder.Output())


def options(start: Callable, end: Callable, **fields: Any) -> Callable[[flatbuffers.Builder], int]:
  """An options writer: options(tflite.Conv2DOptionsStart, tflite.Conv2DOptionsEnd,
  Padding=..., StrideW=...) calls tflite.Conv2DOptionsAdd<Field>(builder, value) for each."""
  prefix = start.__name__[:-len('Start')]

  def write(builder: flatbuffers.Builder) -> int:
    start(builder)
    for field, value in fields.items():
      getattr(tflite, f'{prefix}Add{field}')(builder, value)
    return end(builder)

  return write
