"""A deployed fully integer .tflite as a classifier: what `python -m asc_jax.predict --tflite=FILE`
runs.

The documented front end (log-mel, then the input ResNorm in float32, quantized at the file's
input scale; asc_jax/export/tflite.py), the file's integers from the TFLM-exact runtime
(asc_jax/export/tflite_integer.py), logits dequantized at the file's output scale: the
predictions TensorFlow Lite Micro makes on a device, from asc_jax's command line.
"""

import dataclasses

import numpy as np

from asc_jax import inference
from asc_jax.compress import export as int8_export
from asc_jax.export import graph as graph_lib
from asc_jax.export import int8_scales
from asc_jax.export import tflite as tflite_lib
from asc_jax.export import tflite_integer


@dataclasses.dataclass
class DeployedModel:
  """`logits(logmel)` of a fully integer .tflite, computed as TFLite Micro computes them."""
  graph: graph_lib.Graph
  data: bytes
  input_scale: int8_scales.TensorScale
  output_scale: int8_scales.TensorScale

  def logits(self, logmel: np.ndarray) -> np.ndarray:
    quantized = tflite_lib.input_values(self.graph, logmel, self.input_scale)
    return self.output_scale.dequantize(tflite_integer.run(self.data, quantized))


def load(path: str, runtime) -> DeployedModel:
  """The .tflite at `path`, exported from the int8 model `runtime` (its input ResNorm is the
  front end). Raises ValueError for a file the TFLM-exact runtime does not evaluate."""
  with open(path, 'rb') as file:
    data = file.read()
  if data[4:8] != b'TFL3':
    raise ValueError(f'{path} is not a TFLite flatbuffer (no TFL3 identifier).')
  tensors, _, input_index, output_index = tflite_integer.read(data)
  source, target = tensors[input_index], tensors[output_index]
  if source.dtype != np.int8 or target.dtype == np.float32:
    raise ValueError(f'{path} is not fully integer (input {np.dtype(source.dtype).name}, output '
                     f'{np.dtype(target.dtype).name}): the TFLM-exact runtime evaluates the int8, '
                     'mixed and int16 exports; run a --tflite_activations=float file in '
                     'tflite-micro.')
  if int(source.zero_point[0]) != 0:
    raise ValueError(f'{path}: input zero point {int(source.zero_point[0])}; asc_jax\'s front end '
                     'quantizes the stem input symmetrically (zero point 0).')
  frequencies, frames = source.shape[1:3]
  graph = graph_lib.build(runtime, (frequencies, frames))
  return DeployedModel(
      graph=graph, data=data,
      input_scale=int8_scales.TensorScale(float(source.scale[0]), 0, 'file'),
      output_scale=int8_scales.TensorScale(float(target.scale[0]), int(target.zero_point[0]),
                                           'file', np.dtype(target.dtype).name))


def load_inference_bundle(workdir: str, path: str) -> inference.InferenceBundle:
  """The compressed run `workdir`'s bundle with `model` the deployed file at `path`."""
  bundle = int8_export.load_inference_bundle(workdir)
  return dataclasses.replace(bundle, model=load(path, bundle.model))
