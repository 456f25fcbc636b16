"""TFLite's integer rescaling arithmetic, vectorized over NumPy int64 arrays.

These are the fixed-point primitives TensorFlow Lite (Micro)'s reference integer kernels are built
from (gemmlowp's rounding high multiply and power-of-two division, the "double rounding"
MultiplyByQuantizedMultiplier that TFLite Micro builds by default, the multiplier encoding of a
real scale). asc_jax.export.tflite_integer composes them into the kernels. Every function takes
and returns int64 arrays holding int32 values, so products never overflow.
"""

import math

import numpy as np

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
  """(multiplier, shift): real = multiplier * 2**(shift - 31), multiplier in [2**30, 2**31)."""
  if real == 0.0:
    return 0, 0
  fraction, shift = math.frexp(real)
  fixed = int(round_half_away(fraction * (1 << 31)))
  if fixed == 1 << 31:
    fixed //= 2
    shift += 1
  if shift < -31:
    return 0, 0
  return fixed, shift


def round_half_away(value: float) -> float:
  """std::round: halves away from zero."""
  return math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)


def rounding_high_mul(a, b) -> np.ndarray:
  """gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2**31), halves rounded up."""
  a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
  product = a * b
  nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
  high = np.sign(nudged) * (np.abs(nudged) >> 31)   # C++ division: toward zero
  return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
  """gemmlowp RoundingDivideByPOT: x / 2**exponent, halves away from zero."""
  x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
  mask = (np.int64(1) << exponent) - 1
  remainder = x & mask
  threshold = (mask >> 1) + (x < 0)
  return (x >> exponent) + (remainder > threshold)


def saturating_multiply_by_pot(x, exponent: int) -> np.ndarray:
  """gemmlowp SaturatingRoundingMultiplyByPOT<exponent>."""
  x = np.asarray(x, np.int64)
  if exponent < 0:
    return rounding_divide_by_pot(x, -exponent)
  if exponent == 0:
    return x
  threshold = (1 << (31 - exponent)) - 1
  shifted = x << exponent
  return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, shifted))


def wrap_int32(x) -> np.ndarray:
  """Two's-complement int32 wrap-around (what a 32-bit product or sum does on overflow)."""
  return ((np.asarray(x, np.int64) + 2**31) & 0xFFFFFFFF) - 2**31


def multiply_by_multiplier(x, multiplier, shift) -> np.ndarray:
  """MultiplyByQuantizedMultiplier for int32 x (double rounding)."""
  shift = np.asarray(shift, np.int64)
  left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
  scaled = wrap_int32(np.asarray(x, np.int64) << left)
  return rounding_divide_by_pot(rounding_high_mul(scaled, multiplier), right)


def multiply_by_multiplier_64(x, multiplier, shift) -> np.ndarray:
  """MultiplyByQuantizedMultiplier for int64 x (the 16x8 convolutions' accumulators)."""
  multiplier = np.asarray(multiplier, np.int64)
  reduced = np.where(multiplier < 0x7FFF0000, (multiplier + (1 << 15)) >> 16, 0x7FFF)
  total = 15 - np.asarray(shift, np.int64)
  result = (np.asarray(x, np.int64) * reduced + (np.int64(1) << (total - 1))) >> total
  return wrap_int32(result)


def _count_leading_zeros(x: np.ndarray) -> np.ndarray:
  """Leading zero bits of positive int32 values."""
  bits = np.zeros(x.shape, np.int64)
  value = x.copy()
  for width in (16, 8, 4, 2, 1):
    upper = value >> width
    move = upper > 0
    bits += np.where(move, width, 0)
    value = np.where(move, upper, value)
  return 31 - bits


def inverse_sqrt_multiplier(value) -> tuple[np.ndarray, np.ndarray]:
  """GetInvSqrtQuantizedMultiplierExp(value, reverse_shift=-1): 1 / sqrt(value) as
  (multiplier, left shift), by gemmlowp's five Newton-Raphson steps in Q3.28; value >= 0 and
  below 2**29 (TFLite's own DCHECKs)."""
  value = np.asarray(value, np.int64)
  small = value <= 1
  work = np.where(small, 2, value)
  shift = np.full(work.shape, 11, np.int64)
  pairs = (_count_leading_zeros(work) - 1) // 2 - 1
  shift -= pairs
  work = work << (2 * pairs)
  half_input = rounding_divide_by_pot(work >> 1, 1)
  x = np.full(work.shape, 1 << 28, np.int64)                        # Q3: 1.0
  half_three = (1 << 28) + (1 << 27)                                  # Q3: 1.5
  for _ in range(5):
    cube = saturating_multiply_by_pot(rounding_high_mul(rounding_high_mul(x, x), x), 6)
    difference = wrap_int32(rounding_high_mul(half_three, x) - rounding_high_mul(half_input, cube))
    x = saturating_multiply_by_pot(difference, 3)
  x = rounding_high_mul(x, 1518500250)                                # * sqrt(2) / 2 (Q0)
  x = np.where(shift < 0, wrap_int32(x << np.maximum(-shift, 0)), x)
  shift = np.maximum(shift, 0)
  return np.where(small, INT32_MAX, x), np.where(small, 0, -shift)


def _exp_on_quarter_interval(a: np.ndarray) -> np.ndarray:
  """exp(a) for a in [-1/4, 0), Q0: a Taylor expansion around -1/8 (gemmlowp)."""
  constant_term, one_third = 1895147668, 715827883          # exp(-1/8), 1/3 in Q0
  x = wrap_int32(a + (1 << 28))
  x2 = rounding_high_mul(x, x)
  x3 = rounding_high_mul(x2, x)
  x4 = rounding_high_mul(x2, x2)
  x4_over_4 = saturating_multiply_by_pot(x4, -2)
  series = saturating_multiply_by_pot(
      wrap_int32(rounding_high_mul(wrap_int32(x4_over_4 + x3), one_third) + x2), -1)
  return wrap_int32(constant_term + rounding_high_mul(constant_term, wrap_int32(x + series)))


# exp(-2**k) in Q0 for k = -2..4, the factors of gemmlowp's barrel shifter.
EXP_OF_MINUS_POWERS = {-2: 1672461947, -1: 1302514674, 0: 790015084, 1: 290630308, 2: 39332535,
                       3: 720401, 4: 242}


def exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
  """exp(a) in Q0 for a <= 0 in Q`integer_bits` (gemmlowp exp_on_negative_values)."""
  fractional_bits = 31 - integer_bits
  quarter = 1 << (fractional_bits - 2)
  a = np.asarray(a, np.int64)
  shifted = wrap_int32((a & (quarter - 1)) - quarter)
  result = _exp_on_quarter_interval(saturating_multiply_by_pot(shifted, integer_bits))
  remainder = wrap_int32(shifted - a)
  for exponent, factor in EXP_OF_MINUS_POWERS.items():
    if integer_bits > exponent:
      bit = (remainder & (1 << (fractional_bits + exponent))) != 0
      result = np.where(bit, rounding_high_mul(result, factor), result)
  if integer_bits > 5:
    result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
  return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
  """1 / (1 + a) in Q0 for a in (0, 1) in Q0: three Newton-Raphson steps in Q2 (gemmlowp)."""
  total = a + INT32_MAX
  half_denominator = (total + np.where(total >= 0, 1, -1)) // 2   # sum >= 0: floor is trunc
  x = wrap_int32(1515870810 + rounding_high_mul(half_denominator, -1010580540))   # 48/17, -32/17
  for _ in range(3):
    error = wrap_int32((1 << 29) - rounding_high_mul(half_denominator, x))
    x = wrap_int32(x + saturating_multiply_by_pot(rounding_high_mul(x, error), 2))
  return saturating_multiply_by_pot(x, 1)


def logistic(a: np.ndarray, integer_bits: int) -> np.ndarray:
  """1 / (1 + exp(-a)) in Q0 for a in Q`integer_bits` (gemmlowp logistic)."""
  a = np.asarray(a, np.int64)
  positive = a > 0
  magnitude = np.where(positive, a, wrap_int32(-a))
  on_positive = _one_over_one_plus_x(exp_on_negative_values(wrap_int32(-magnitude), integer_bits))
  result = np.where(positive, on_positive, wrap_int32(INT32_MAX - on_positive))
  return np.where(a == 0, 1 << 30, result)
