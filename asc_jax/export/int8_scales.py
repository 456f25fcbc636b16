"""int8 scale and zero point of every tensor of the deployable graph (TFLite's int8 scheme).

Fixed, never re-calibrated: the input of every convolution keeps the scale quantization-aware
training learned (symmetric, zero point 0), and with it every tensor that must share that
quantization (PAD, SLICE, CONCATENATION and MAX_POOL_2D keep their input's scale in TFLite Micro);
LOGISTIC outputs use TFLite's fixed 1/256, zero point -128. The NumPy runtime holds the remaining
tensors (normalization statistics, sums, SiLU, logits) in float32; here each gets an asymmetric
per-tensor int8 range calibrated on training clips: [min(0, lowest), max(0, highest)] over them.
"""

import dataclasses

import numpy as np

from asc_jax.export import graph as graph_lib

SHARED = ('pad', 'slice', 'concat', 'max_pool')
LOGISTIC_SCALE, LOGISTIC_ZERO_POINT = 1.0 / 256, -128


@dataclasses.dataclass(frozen=True)
class TensorScale:
  scale: float
  zero_point: int
  source: str             # 'qat' | 'calibrated' | 'fixed'
  dtype: str = 'int8'     # 'int8' | 'int16' (symmetric, zero point 0)

  def quantize(self, x: np.ndarray) -> np.ndarray:
    info = np.iinfo(self.dtype)
    q = np.round(np.asarray(x, np.float64) / self.scale) + self.zero_point
    return np.clip(q, info.min, info.max).astype(self.dtype)

  def dequantize(self, q: np.ndarray) -> np.ndarray:
    return ((q.astype(np.float32) - self.zero_point) * np.float32(self.scale)).astype(np.float32)


def _groups(ops: list[graph_lib.Op]) -> dict[str, str]:
  """Union-find: tensor -> representative of the tensors that must share one quantization."""
  parent: dict[str, str] = {}

  def find(name: str) -> str:
    parent.setdefault(name, name)
    while parent[name] != name:
      parent[name] = parent[parent[name]]
      name = parent[name]
    return name

  for op in ops:
    find(op.output)
    for name in op.inputs:
      find(name)
    if op.kind in SHARED:
      for name in op.inputs:
        parent[find(name)] = find(op.output)
  return {name: find(name) for name in parent}


def calibrated(lowest: float, highest: float, dtype: str = 'int8') -> TensorScale:
  """Asymmetric int8 covering [min(0, lowest), max(0, highest)], or symmetric int16."""
  lowest, highest = min(0.0, float(lowest)), max(0.0, float(highest))
  if dtype == 'int16':
    bound = max(-lowest, highest)
    return TensorScale(float(np.float32(bound / 32767)) if bound > 0 else 1.0, 0, 'calibrated',
                       'int16')
  if highest - lowest <= 0:
    return TensorScale(1.0, 0, 'calibrated')
  scale = (highest - lowest) / 255.0
  zero_point = int(np.clip(np.round(-128 - lowest / scale), -128, 127))
  return TensorScale(float(np.float32(scale)), zero_point, 'calibrated')


def assign(graph: graph_lib.Graph, ops: list[graph_lib.Op], ranges: dict[str, tuple[float, float]],
           activations: str = 'int8') -> dict[str, TensorScale]:
  """TensorScale of every non-constant tensor used by `ops` (ranges: tensor -> (min, max)).

  activations: 'int8' (every tensor int8); 'mixed' (the calibrated tensors that no convolution
  produces, i.e. sums, ResNorm, SiLU, logits, are int16; convolutions int8 x int8 -> int8);
  'int16' (every calibrated tensor int16, convolution outputs included: 16x8 convolutions).
  Convolution inputs stay int8 at their QAT scale in every mode."""
  if activations not in ('int8', 'mixed', 'int16'):
    raise ValueError(f'activations {activations!r}: choose int8, mixed or int16.')
  wide = activations != 'int8'
  group_of = _groups(ops)
  fixed: dict[str, TensorScale] = {}

  def require(name: str, value: TensorScale, why: str) -> None:
    group = group_of[name]
    if group in fixed and fixed[group] != value:
      raise ValueError(f'tensor {name} needs two quantizations ({fixed[group]} and {value}, '
                       f'{why}); the graph cannot carry both.')
    fixed[group] = value

  for op in ops:
    if op.kind == 'conv':
      require(op.inputs[0], TensorScale(float(op.attrs['input_scale']), 0, 'qat'),
              f'input of {op.attrs["layer"]}')
    elif op.kind == 'logistic':
      require(op.output, TensorScale(1 / 32768, 0, 'fixed', 'int16') if wide else
              TensorScale(LOGISTIC_SCALE, LOGISTIC_ZERO_POINT, 'fixed'), 'LOGISTIC output')
  narrow = {group_of[op.output] for op in ops
            if not wide or (op.kind == 'conv' and activations == 'mixed')}
  group_range: dict[str, list[float]] = {}
  for name, group in group_of.items():
    if name in graph.constants or name not in ranges:
      continue
    low, high = ranges[name]
    current = group_range.setdefault(group, [low, high])
    current[0], current[1] = min(current[0], low), max(current[1], high)
  scales = {}
  for name, group in group_of.items():
    if name in graph.constants:
      continue
    if group in fixed:
      scales[name] = fixed[group]
    else:
      scales[name] = calibrated(*group_range[group], 'int8' if group in narrow else 'int16')
  return scales


def value_ranges(values: dict[str, np.ndarray], into: dict[str, tuple[float, float]]) -> None:
  """Widens `into` (tensor -> (min, max)) by the tensors of one evaluate() result."""
  for name, value in values.items():
    low, high = float(np.min(value)), float(np.max(value))
    if name in into:
      low, high = min(low, into[name][0]), max(high, into[name][1])
    into[name] = (low, high)
