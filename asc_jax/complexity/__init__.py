"""Model complexity the way DCASE measures it: parameters, stored bytes, MACs, receptive field.

  DCASE2021 rule: every stored array counts (BatchNorm running mean and variance included), only its
                  non-zero entries, each at the bytes of its stored dtype (float32 4, float16 2, int8 1).
  DCASE2022+ rule: every trainable parameter counts, zeros too, at 1 byte (int8).
  MACs per clip: for each convolution (and 1x1 convolution / dense layer),
                 k_h * k_w * (C_in / groups) * C_out * H_out * W_out, for the config's input shape.
KB are given both as bytes / 1000 (the rule text) and bytes / 1024 (the official helper).
The counting functions take any variables pytree whose leaves are float32, float16 or int8 arrays
(quantized exports carry int8 weights plus float scales) or shape-only leaves (jax.ShapeDtypeStruct,
counted as dense: every entry non-zero, as in a trained unpruned model).

The command line (a trained workdir, an int8 export) is asc_jax/complexity/__main__.py; this
module only counts, and imports no run, checkpoint or compression code.
"""

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from asc_jax import models
from asc_jax.models import layers

RECEPTIVE_FIELD_NOTE = ('through convolutions and pooling; the frequency average in every BC-ResBlock '
                        'and the normalization statistics also give each output a view of all mel '
                        'bins.')


@dataclasses.dataclass(frozen=True)
class LayerCall:
  """One convolution, BatchNorm or pooling call met in a forward pass (batch of 1)."""
  path: str
  kind: str                         # conv | batch_norm | max_pool
  kernel_size: tuple[int, int]
  strides: tuple[int, int]
  dilation: tuple[int, int]
  output_shape: tuple[int, ...]     # (F, T, C)
  macs: int


def input_shape(features: ml_collections.ConfigDict) -> tuple[int, int]:
  """(mel bins, frames) of one clip under config.features."""
  samples = int(features.sample_rate * features.duration_s)
  if features.center:
    frames = 1 + samples // features.hop_length
  else:
    frames = 1 + (samples - features.n_fft) // features.hop_length
  return int(features.n_mels), int(frames)


def trace_layers(model: nn.Module, shape: tuple[int, int]) -> list[LayerCall]:
  """The convolution, BatchNorm and pooling calls of a forward pass of a [1, F, T] input, in order."""
  calls = []

  def record(next_fun, args, kwargs, context):
    output = next_fun(*args, **kwargs)
    module = context.module
    if context.method_name != '__call__':
      return output
    path = '/'.join(module.path)
    if isinstance(module, layers.Conv):
      in_channels, out_shape = args[0].shape[-1], output.shape[1:]
      macs = (math.prod(module.kernel_size) * (in_channels // module.groups) * module.features
              * math.prod(out_shape[:2]))
      calls.append(LayerCall(path, 'conv', tuple(module.kernel_size), tuple(module.strides),
                             tuple(module.dilation), tuple(out_shape), int(macs)))
    elif isinstance(module, nn.BatchNorm):
      calls.append(LayerCall(path, 'batch_norm', (1, 1), (1, 1), (1, 1), tuple(output.shape[1:]), 0))
    elif isinstance(module, layers.MaxPool):
      window = tuple(module.window)
      calls.append(LayerCall(path, 'max_pool', window, window, (1, 1), tuple(output.shape[1:]), 0))
    return output

  def init():
    with nn.intercept_methods(record):
      return model.init({'params': jax.random.key(0)}, jnp.zeros((1, *shape)), train=False)

  jax.eval_shape(init)
  return calls


def abstract_variables(model: nn.Module, shape: tuple[int, int]) -> dict[str, Any]:
  """Shapes and dtypes of the model's variables, without computing them."""
  return jax.eval_shape(lambda: model.init({'params': jax.random.key(0)}, jnp.zeros((1, *shape)),
                                           train=False))


def receptive_field(calls: list[LayerCall]) -> tuple[int, int]:
  """(mel bins, frames) seen by one output unit through the convolutions and poolings."""
  field, jump = [1, 1], [1, 1]
  for call in calls:
    for axis in range(2):
      field[axis] += call.dilation[axis] * (call.kernel_size[axis] - 1) * jump[axis]
      jump[axis] *= call.strides[axis]
  return field[0], field[1]


def _nonzero(leaf: Any) -> int:
  if isinstance(leaf, jax.ShapeDtypeStruct):
    return math.prod(leaf.shape)
  return int(np.count_nonzero(np.asarray(leaf)))


def variable_rows(variables: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per stored array: collection, layer path, name, size, non-zero entries, bytes."""
  rows = []
  for key_path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
    names = [str(getattr(key, 'key', getattr(key, 'name', key))) for key in key_path]
    size = math.prod(np.shape(leaf))
    nonzero = _nonzero(leaf)
    rows.append(dict(collection=names[0], layer='/'.join(names[1:-1]), name=names[-1], size=size,
                     nonzero=nonzero, bytes_dcase2021=nonzero * np.dtype(leaf.dtype).itemsize))
  return rows


def _kilobytes(report: dict[str, Any], key: str) -> None:
  report[f'kb_{key}'] = report[f'bytes_{key}'] / 1000
  report[f'kib_{key}'] = report[f'bytes_{key}'] / 1024


def measure(variables: dict[str, Any], model_config: ml_collections.ConfigDict,
            shape: tuple[int, int]) -> dict[str, Any]:
  """Totals and per-layer table for `variables` of the network of `model_config` on [F, T] clips."""
  calls = trace_layers(models.build_model(model_config), shape)
  traced_paths = {call.path for call in calls}
  layer_rows: dict[str, dict[str, Any]] = {}
  for call in calls:
    layer_rows[call.path] = dict(layer=call.path, kind=call.kind, params=0, nonzero_params=0,
                                 bytes_dcase2021=0, bytes_dcase2022=0, macs=call.macs,
                                 output_shape=list(call.output_shape))
  for row in variable_rows(variables):
    layer = layer_rows.setdefault(row['layer'], dict(
        layer=row['layer'], kind='other', params=0, nonzero_params=0, bytes_dcase2021=0,
        bytes_dcase2022=0, macs=0, output_shape=None))
    layer['bytes_dcase2021'] += row['bytes_dcase2021']
    if row['collection'] == 'params':
      layer['params'] += row['size']
      layer['nonzero_params'] += row['nonzero']
      layer['bytes_dcase2022'] += row['size']
  ordered = [layer_rows[call.path] for call in calls]
  ordered += [row for path, row in layer_rows.items() if path not in traced_paths]
  report = dict(model=model_config.name, width=float(model_config.width),
                input_shape=list(shape),
                nonzero_measured=not any(isinstance(leaf, jax.ShapeDtypeStruct)
                                         for leaf in jax.tree.leaves(variables)))
  for key in ('params', 'nonzero_params', 'bytes_dcase2021', 'bytes_dcase2022', 'macs'):
    report[key] = int(sum(row[key] for row in ordered))
  _kilobytes(report, 'dcase2021')
  _kilobytes(report, 'dcase2022')
  mel_bins, frames = receptive_field(calls)
  report['receptive_field'] = dict(mel_bins=mel_bins, frames=frames, note=RECEPTIVE_FIELD_NOTE)
  report['layers'] = ordered
  return report


def dense_report(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The complexity report of config's model with every weight counted as non-zero."""
  shape = input_shape(config.features)
  return measure(abstract_variables(models.build_model(config.model), shape), config.model, shape)


def format_table(report: dict[str, Any]) -> str:
  header = f'{"layer":<34}{"params":>10}{"non-zero":>10}{"B 2021":>10}{"MACs":>14}  output'
  lines = [header, '-' * len(header)]
  for row in report['layers']:
    shape = 'x'.join(map(str, row['output_shape'])) if row['output_shape'] else ''
    lines.append(f'{row["layer"]:<34}{row["params"]:>10,}{row["nonzero_params"]:>10,}'
                 f'{row["bytes_dcase2021"]:>10,}{row["macs"]:>14,}  {shape}')
  rf = report['receptive_field']
  lines += ['-' * len(header),
            f'input {report["input_shape"][0]} mel bins x {report["input_shape"][1]} frames',
            f'parameters           {report["params"]:,} ({report["nonzero_params"]:,} non-zero'
            f'{"" if report["nonzero_measured"] else ", assumed dense"})',
            f'DCASE2021 size       {report["bytes_dcase2021"]:,} B = {report["kb_dcase2021"]:.2f} KB '
            f'(/1000) = {report["kib_dcase2021"]:.2f} KB (/1024)',
            f'DCASE2022+ size      {report["bytes_dcase2022"]:,} B (int8) = '
            f'{report["kb_dcase2022"]:.2f} KB (/1000) = {report["kib_dcase2022"]:.2f} KB (/1024)',
            f'MACs per clip        {report["macs"]:,} ({report["macs"] / 1e6:.2f} M)',
            f'receptive field      {rf["mel_bins"]} mel bins x {rf["frames"]} frames ({rf["note"]})']
  return '\n'.join(lines)
