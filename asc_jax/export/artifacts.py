"""From a compressed workdir to deployment artifacts, each run in its runtime and compared with the
int8 NumPy runtime on the test split; writes everything into a new output directory.

  model_int8.tflite   fully integer TFLite (TFLite Micro, LiteRT)          --format=tflite
                      (--tflite_activations=float: int8 weights, float32 kernels)
  model_int8.onnx     ONNX QDQ, opset 13 (ONNX Runtime)                    --format=onnx
  model_int8.h        the .tflite as a C array + TFLM_README.md snippet    --format=c
  front_end.json + mel_filterbank.npy   the log-mel front end (always)
  export_report.json / export_report.md  sizes, arena, agreement (always)
Files are written atomically (temporary file, then rename); nothing is pickled.
"""

import dataclasses
import os
from typing import Sequence

import ml_collections
import numpy as np

from asc_jax import complexity
from asc_jax import fileio
from asc_jax.compress import export as int8_export
from asc_jax.compress import int8_runtime
from asc_jax.data import datasets
from asc_jax.export import c_array
from asc_jax.export import clips as clips_lib
from asc_jax.export import front_end as front_end_lib
from asc_jax.export import graph as graph_lib
from asc_jax.export import int8_scales
from asc_jax.export import onnx_model
from asc_jax.export import report as report_lib
from asc_jax.export import runtimes
from asc_jax.export import tflite as tflite_lib
from asc_jax.export import tflite_integer

FORMATS = ('tflite', 'onnx', 'c')
TFLITE_FILE, ONNX_FILE, HEADER_FILE = 'model_int8.tflite', 'model_int8.onnx', 'model_int8.h'
SNIPPET_FILE = 'TFLM_README.md'
REPORT_JSON, REPORT_MARKDOWN = 'export_report.json', 'export_report.md'
FRONT_END_FILE = 'front_end.json'
ARENA_MARGIN = 1.10   # the header's arena: measured size + 10 %, rounded up to 16 bytes
CHUNK = 64
TFLITE_ACTIVATIONS = ('int8', 'mixed', 'int16', 'float')


@dataclasses.dataclass
class Inputs:
  """What every format is built from: the runtime, its graph, calibration and test clips."""
  export_dir: str
  model: int8_runtime.Int8Model
  graph: graph_lib.Graph
  ranges: dict
  shapes: dict
  test: dict
  calibration_clips: int


def prepare(workdir: str, calibration_clips: int = 256, max_clips: int = 0) -> Inputs:
  export_dir = int8_export.find_export(workdir)
  if export_dir is None:
    raise FileNotFoundError(f'no int8 export in {workdir}: run python -m asc_jax.compress first.')
  model = int8_runtime.Int8Model.load(export_dir)
  dataset = datasets.prepare(clips_lib.run_config(workdir))
  graph = graph_lib.build(model, tuple(dataset.input_shape))
  calibration = clips_lib.load_split(dataset, 'train', calibration_clips)['logmel']
  ranges: dict = {}
  for start in range(0, len(calibration), CHUNK):
    int8_scales.value_ranges(graph_lib.evaluate(graph, calibration[start:start + CHUNK]), ranges)
  shapes = {name: (1, *value.shape[1:])
            for name, value in graph_lib.evaluate(graph, calibration[:1]).items()}
  test = clips_lib.load_split(dataset, 'test', max_clips)
  return Inputs(export_dir, model, graph, ranges, shapes, test, len(calibration))


def _chunked(function, x: np.ndarray) -> np.ndarray:
  return np.concatenate([function(x[start:start + CHUNK]) for start in range(0, len(x), CHUNK)])


def _readable(out: str) -> None:
  """rw-r--r-- for every file written (atomic writes create them private)."""
  for name in os.listdir(out):
    path = os.path.join(out, name)
    if os.path.isfile(path) and not name.startswith('.tmp-'):
      os.chmod(path, 0o644)


def _write(out: str, name: str, data: bytes, artifacts: list, kind: str) -> None:
  fileio.atomic_write_bytes(os.path.join(out, name), data)
  artifacts.append(dict(file=name, bytes=len(data), format=kind))


def export(workdir: str, out: str, formats: Sequence[str] = FORMATS, calibration_clips: int = 256,
           max_clips: int = 0, tflite_activations: str = 'int8', log=print) -> dict:
  """Builds, writes and checks the requested formats; returns the report (also written).

  tflite_activations: 'int8' (every activation int8; tflite-micro, ai-edge-litert and the
  TFLM-exact runtime compute the same integers), 'mixed' (int8 convolutions, int16 for the sums,
  ResNorm and SiLU between them), 'int16' (16x8 convolutions too), or 'float' (not
  fully integer: int8 weights and int8 convolution inputs, float32 kernels computing the int8
  runtime's arithmetic; see asc_jax/export/tflite_float.py)."""
  if tflite_activations not in TFLITE_ACTIVATIONS:
    raise ValueError(f'tflite_activations {tflite_activations!r}: choose one of {", ".join(TFLITE_ACTIVATIONS)}.')
  unknown = set(formats) - set(FORMATS)
  if unknown:
    raise ValueError(f'unknown --format {sorted(unknown)}; choose from {", ".join(FORMATS)}, all.')
  inputs = prepare(workdir, calibration_clips, max_clips)
  os.makedirs(out, exist_ok=True)
  manifest = inputs.model.manifest
  test = inputs.test
  reference = _chunked(inputs.model.logits, test['logmel'])
  size = complexity.measure(inputs.model.variables, _model_config(manifest),
                            tuple(inputs.graph.input_shape))
  report = dict(workdir=os.path.abspath(workdir), export_dir=os.path.abspath(inputs.export_dir),
                split='test', clips=int(len(reference)), calibration_clips=inputs.calibration_clips,
                model_size={key: value for key, value in size.items() if key != 'layers'},
                reference=dict(accuracy=float(np.mean(reference.argmax(-1) == test['label'])),
                               logit_range=float(reference.max() - reference.min())),
                artifacts=[], agreement=[])
  artifacts, rows = report['artifacts'], report['agreement']

  def compare(artifact: str, runtime: str, logits: np.ndarray, against: np.ndarray = reference,
              against_name: str = report_lib.INT8_RUNTIME) -> None:
    row = dict(artifact=artifact, runtime=runtime, reference=against_name,
               **report_lib.agreement(logits, against, test['label']))
    rows.append(row)
    log(f'{artifact} in {runtime} against the {against_name}: top-1 agreement '
        f'{100 * row["top1_agreement"]:.2f} %, max |logit diff| '
        f'{row["max_abs_logit_difference"]:.4f}')

  front_end = front_end_lib.description(inputs.export_dir, manifest)
  front_end['model_input_norm'] = dict(norm=manifest['model']['norm'],
                                       norm_lambda=manifest['model']['norm_lambda'],
                                       norm_eps=manifest['model']['norm_eps'],
                                       axes='time and channels, per example and frequency bin')
  fileio.atomic_write_json(os.path.join(out, FRONT_END_FILE), front_end)
  int8_export.write_front_end(out, manifest['feature_params'])

  if 'tflite' in formats or 'c' in formats:
    model = tflite_lib.build_tflite(inputs.graph, inputs.ranges, inputs.shapes,
                                    description=f'asc_jax {manifest["model"]["name"]} int8',
                                    activations=tflite_activations)
    _write(out, TFLITE_FILE, model.data, artifacts,
           'TFLite flatbuffer, int8 weights and convolution inputs, float32 kernels (not fully '
           'integer)' if tflite_activations == 'float' else
           f'TFLite flatbuffer, fully integer ({tflite_activations} activations, int8 weights)')
    quantized_input = _chunked(lambda x: tflite_lib.input_values(inputs.graph, x,
                                                                 model.input_scale),
                               test['logmel'])
    arena = runtimes.tflite_micro_arena_bytes(model.data)
    header_arena = int(np.ceil(arena * ARENA_MARGIN / 16) * 16)
    micro = runtimes.run_tflite_micro(model.data, quantized_input, header_arena)
    litert = runtimes.run_litert(model.data, quantized_input)
    compare(TFLITE_FILE, 'tflite-micro', model.output_scale.dequantize(micro))
    compare(TFLITE_FILE, 'ai-edge-litert', model.output_scale.dequantize(litert))
    sources = [scale.source for scale in model.scales.values()]
    report['tflite'] = dict(
        file=TFLITE_FILE, activations=tflite_activations, arena_bytes=arena,
        header_arena_bytes=header_arena,
        input_shape=list(model.input_shape), input_dtype='int8',
        input_scale=model.input_scale.scale, input_zero_point=model.input_scale.zero_point,
        output_dtype=model.output_scale.dtype, output_scale=model.output_scale.scale,
        output_zero_point=model.output_scale.zero_point,
        op_counts=model.op_counts, clipped_weights=model.clipped_weights,
        scales={kind: sources.count(kind) for kind in ('qat', 'fixed', 'calibrated')},
        runtimes_agreement=report_lib.runtimes_agreement(micro, litert))
    if tflite_activations in tflite_integer.ACTIVATIONS:
      exact = tflite_integer.run(model.data, quantized_input)
      exact_logits = model.output_scale.dequantize(exact)
      compare(TFLITE_FILE, 'tflite-micro', model.output_scale.dequantize(micro), exact_logits,
              report_lib.EXACT_RUNTIME)
      compare(TFLITE_FILE, 'ai-edge-litert', model.output_scale.dequantize(litert), exact_logits,
              report_lib.EXACT_RUNTIME)
      report['exact_runtime'] = dict(
          accuracy=float(np.mean(exact_logits.argmax(-1) == test['label'])),
          int8_runtime_top1_agreement=float(np.mean(exact_logits.argmax(-1)
                                                    == reference.argmax(-1))),
          tflite_micro=report_lib.runtimes_agreement(micro, exact),
          litert=report_lib.runtimes_agreement(litert, exact))
    if 'c' in formats:
      header = c_array.header(model.data, 'model_int8', arena_bytes=header_arena,
                              input_scale=model.input_scale.scale,
                              input_zero_point=model.input_scale.zero_point,
                              output_scale=model.output_scale.scale,
                              output_zero_point=model.output_scale.zero_point,
                              class_names=manifest['class_names'],
                              output_dtype=model.output_scale.dtype)
      _write(out, HEADER_FILE, header.encode('utf-8'), artifacts, 'C header (TFLite Micro)')
      fileio.atomic_write_text(os.path.join(out, SNIPPET_FILE),
                               '# model_int8.h in TensorFlow Lite for Microcontrollers\n\n'
                               + c_array.snippet('model_int8', model.op_counts,
                                                 model.output_scale.dtype))
  if 'onnx' in formats:
    data = onnx_model.build_onnx(inputs.graph, len(manifest['class_names']),
                                 description=f'asc_jax {manifest["model"]["name"]} int8 (QDQ)')
    _write(out, ONNX_FILE, data, artifacts, f'ONNX QDQ, opset {onnx_model.OPSET}')
    compare(ONNX_FILE, 'onnxruntime', runtimes.run_onnxruntime(data, test['logmel']))
  fileio.atomic_write_json(os.path.join(out, REPORT_JSON), report)
  fileio.atomic_write_text(os.path.join(out, REPORT_MARKDOWN), report_lib.markdown(report))
  _readable(out)
  return report


def _model_config(manifest: dict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(manifest['model'])
