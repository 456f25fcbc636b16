"""asc_jax's TFLM-exact runtime against the real tflite-micro interpreter, one op at a time: every
kernel it reproduces, on exhaustive or random integer inputs at awkward scales, must give the
interpreter's integers exactly. Plus the fixed-point primitives on known values."""

import numpy as np
import pytest
import tflite

from asc_jax.export import fixed_point as fp
from asc_jax.export import flatbuffer
from asc_jax.export import runtimes
from asc_jax.export import tflite_integer

OP, OPTIONS = tflite.BuiltinOperator, tflite.BuiltinOptions


def tensor(name, shape, dtype, scale=None, zero_point=0, data=None, axis=0):
  quantization = None
  if scale is not None:
    scale = np.atleast_1d(np.asarray(scale, np.float32))
    quantization = flatbuffer.Quantization(scale, np.full(scale.shape, zero_point, np.int64), axis)
  return flatbuffer.Tensor(name, tuple(shape), np.dtype(dtype), data=data,
                           quantization=quantization)


def one_op(code, tensors, inputs, options_type=0, options=None) -> bytes:
  """A model of one op: tensors[0] is the input, tensors[-1] the output."""
  ops = [flatbuffer.Operator(code, inputs, [len(tensors) - 1], options_type, options)]
  return flatbuffer.serialize(tensors, ops, [0], [len(tensors) - 1], 'one op')


def assert_same_as_tflite_micro(model: bytes, x: np.ndarray) -> np.ndarray:
  micro = runtimes.run_tflite_micro(model, x, 1 << 22).reshape(len(x), -1)
  ours = tflite_integer.run(model, x).reshape(len(x), -1)
  mismatched = np.nonzero(micro != ours)
  assert not len(mismatched[0]), (micro[mismatched][:8], ours[mismatched][:8])
  return ours


@pytest.mark.parametrize('scales', [(4.621e-05, 7.2627e-05), (3.5255e-05, 8.3862e-05),
                                    (1e-3, 3e-4), (0.25, 0.002)])
def test_rsqrt_int16_on_every_input(scales):
  x = np.arange(32768, dtype=np.int16).reshape(1, 128, 256)
  model = one_op(OP.RSQRT, [tensor('x', x.shape, np.int16, scales[0]),
                            tensor('y', x.shape, np.int16, scales[1])], [0])
  out = assert_same_as_tflite_micro(model, x)
  values = x.reshape(-1)[1:].astype(np.float64) * np.float32(scales[0])
  expected = np.minimum(1 / np.sqrt(values) / np.float32(scales[1]), 32767)
  assert np.abs(out.reshape(-1)[1:] - expected).max() <= 2   # a near-exact inverse square root


@pytest.mark.parametrize('input_scale', [2.0**-12, 3.1e-4, 1.7e-3])
def test_logistic_int16_on_every_input(input_scale):
  x = np.arange(-32768, 32768, dtype=np.int16).reshape(1, 256, 256)
  model = one_op(OP.LOGISTIC, [tensor('x', x.shape, np.int16, input_scale),
                               tensor('y', x.shape, np.int16, 2.0**-15)], [0])
  out = assert_same_as_tflite_micro(model, x)
  expected = 32768 / (1 + np.exp(-x.astype(np.float64) * input_scale))
  assert np.abs(out.reshape(-1) - np.minimum(expected.reshape(-1), 32767)).max() <= 8


@pytest.mark.parametrize('input_scale, zero_point', [(0.0625, 0), (0.0371, -9), (0.11, 20)])
def test_logistic_int8_on_every_input(input_scale, zero_point):
  x = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16)
  model = one_op(OP.LOGISTIC, [tensor('x', x.shape, np.int8, input_scale, zero_point),
                               tensor('y', x.shape, np.int8, 1 / 256, -128)], [0])
  out = assert_same_as_tflite_micro(model, x)
  expected = 256 / (1 + np.exp(-(x.astype(np.float64) - zero_point) * input_scale)) - 128
  assert np.abs(out.reshape(-1) - np.minimum(expected.reshape(-1), 127)).max() <= 1


def random_int(rng, shape, dtype, clips=4):
  info = np.iinfo(dtype)
  return rng.integers(info.min, info.max + 1, (clips, *shape)).astype(dtype)


@pytest.mark.parametrize('dtype, zero_point', [(np.int16, 0), (np.int8, -7)])
def test_mean_over_time_and_channels(dtype, zero_point):
  rng = np.random.default_rng(0)
  shape = (1, 12, 29, 6)
  x = random_int(rng, shape, dtype)
  axes = np.array([2, 3], np.int32)
  model = one_op(OP.MEAN, [tensor('x', shape, dtype, 3.7e-3, zero_point),
                           tensor('axes', axes.shape, np.int32, data=axes),
                           tensor('y', (1, 12, 1, 1), dtype, 1.3e-3, zero_point // 2)], [0, 1],
                 OPTIONS.ReducerOptions,
                 flatbuffer.options(tflite.ReducerOptionsStart, tflite.ReducerOptionsEnd,
                                    KeepDims=True))
  assert_same_as_tflite_micro(model, x.reshape(len(x), *shape[1:]))


@pytest.mark.parametrize('code', [OP.ADD, OP.SUB, OP.MUL])
@pytest.mark.parametrize('dtype', [np.int16, np.int8])
def test_binary_ops_with_broadcast_and_relu(code, dtype):
  rng = np.random.default_rng(1)
  shape, other = (1, 10, 17, 4), (1, 10, 1, 1)
  x = random_int(rng, shape, dtype)
  second = random_int(rng, other, dtype, clips=1)[0]
  zero_point = 0 if dtype == np.int16 else 5
  starts = {OP.ADD: (OPTIONS.AddOptions, tflite.AddOptionsStart, tflite.AddOptionsEnd),
            OP.SUB: (OPTIONS.SubOptions, tflite.SubOptionsStart, tflite.SubOptionsEnd),
            OP.MUL: (OPTIONS.MulOptions, tflite.MulOptionsStart, tflite.MulOptionsEnd)}
  options_type, start, end = starts[code]
  activation = (tflite.ActivationFunctionType.RELU if code == OP.ADD
                else tflite.ActivationFunctionType.NONE)
  model = one_op(code, [tensor('x', shape, dtype, 8.9791e-4, zero_point),
                        tensor('b', other, dtype, 2.5004e-5, 0, data=second),
                        tensor('y', shape, dtype, 1.1e-3 if code != OP.MUL else 2.3e-5,
                               -zero_point)], [0, 1], options_type,
                 flatbuffer.options(start, end, FusedActivationFunction=activation))
  assert_same_as_tflite_micro(model, x.reshape(len(x), *shape[1:]))


@pytest.mark.parametrize('source, target', [(np.int8, np.int16), (np.int16, np.int8)])
def test_quantize_between_widths(source, target):
  rng = np.random.default_rng(2)
  shape = (1, 8, 9, 3)
  x = random_int(rng, shape, source)
  model = one_op(OP.QUANTIZE, [tensor('x', shape, source, 0.0123, 3 if source == np.int8 else 0),
                               tensor('y', shape, target, 0.0007 if target == np.int16 else 0.05,
                                      0 if target == np.int16 else -4)], [0])
  assert_same_as_tflite_micro(model, x.reshape(len(x), *shape[1:]))


@pytest.mark.parametrize('depthwise', [False, True])
@pytest.mark.parametrize('dtype', [np.int8, np.int16])
def test_convolutions_with_per_channel_scales(depthwise, dtype):
  rng = np.random.default_rng(3)
  channels_in, channels_out = 5, 5 if depthwise else 7
  shape = (1, 11, 13, channels_in)
  x = random_int(rng, shape, dtype, clips=3)
  if dtype == np.int16:
    x = (x // 64).astype(dtype)   # 16x8 sums that still fit the int64 rescaling's range
  kernel_shape = (1, 3, 3, channels_out) if depthwise else (channels_out, 3, 3, channels_in)
  kernel = rng.integers(-127, 128, kernel_shape).astype(np.int8)
  weight_scale = rng.uniform(1e-3, 9e-3, channels_out).astype(np.float32)
  input_scale = 0.0421 if dtype == np.int8 else 0.0421 / 128
  bias_dtype = np.int64 if dtype == np.int16 else np.int32
  bias = rng.integers(-5000, 5000, channels_out).astype(bias_dtype)
  out_shape = (1, 11, 13, channels_out)
  tensors = [tensor('x', shape, dtype, input_scale),
             tensor('w', kernel_shape, np.int8, weight_scale, data=kernel,
                    axis=3 if depthwise else 0),
             tensor('b', (channels_out,), bias_dtype, weight_scale * np.float32(input_scale),
                    data=bias),
             tensor('y', out_shape, dtype, 0.09 if dtype == np.int8 else 0.0009,
                    -3 if dtype == np.int8 else 0)]
  common = dict(Padding=tflite.Padding.SAME, StrideW=1, StrideH=1, DilationWFactor=1,
                DilationHFactor=1, FusedActivationFunction=tflite.ActivationFunctionType.RELU)
  if depthwise:
    model = one_op(OP.DEPTHWISE_CONV_2D, tensors, [0, 1, 2], OPTIONS.DepthwiseConv2DOptions,
                   flatbuffer.options(tflite.DepthwiseConv2DOptionsStart,
                                      tflite.DepthwiseConv2DOptionsEnd, DepthMultiplier=1,
                                      **common))
  else:
    model = one_op(OP.CONV_2D, tensors, [0, 1, 2], OPTIONS.Conv2DOptions,
                   flatbuffer.options(tflite.Conv2DOptionsStart, tflite.Conv2DOptionsEnd,
                                      **common))
  out = assert_same_as_tflite_micro(model, x.reshape(len(x), *shape[1:]))
  assert len(np.unique(out)) > 20   # not saturated: the rescaling itself was compared


def test_fixed_point_primitives_on_known_values():
  assert fp.quantize_multiplier(0.5) == (1 << 30, 0)
  assert fp.quantize_multiplier(0.75) == (3 << 29, 0)
  assert fp.quantize_multiplier(3.0) == (3 << 29, 2)
  assert fp.quantize_multiplier(0.0) == (0, 0)
  # round(a * b / 2**31) with halves rounded up, and the single saturating case.
  assert fp.rounding_high_mul(1 << 30, 3).tolist() == 2
  assert fp.rounding_high_mul(-(1 << 30), 3).tolist() == -1
  assert fp.rounding_high_mul(-(1 << 30), 5).tolist() == -2
  assert fp.rounding_high_mul(fp.INT32_MIN, fp.INT32_MIN).tolist() == fp.INT32_MAX
  assert fp.rounding_divide_by_pot(np.array([5, -5, 6, -6, 7]), 1).tolist() == [3, -3, 3, -3, 4]
  assert fp.multiply_by_multiplier(1000, *fp.quantize_multiplier(0.3)).tolist() == 300
  # The int64 form keeps 15 bits of the multiplier: 1e-6 becomes 17180 / 2**34.
  assert fp.multiply_by_multiplier_64(10**12, *fp.quantize_multiplier(1e-6)).tolist() == 1000008
  values = np.array([2, 3, 10, 1000, 12345, 2**20, 2**28 + 5])
  multiplier, shift = fp.inverse_sqrt_multiplier(values)
  approx = multiplier.astype(np.float64) * 2.0 ** (shift.astype(np.float64) - 31)
  np.testing.assert_allclose(approx, 1 / np.sqrt(values), rtol=2e-6)


def test_an_op_it_does_not_evaluate_is_named():
  shape = (1, 4, 4, 1)
  model = one_op(OP.HARD_SWISH, [tensor('x', shape, np.int8, 0.1), tensor('y', shape, np.int8,
                                                                          0.1)], [0])
  with pytest.raises(ValueError, match='HARD_SWISH'):
    tflite_integer.run(model, np.zeros((1, 4, 4, 1), np.int8))
