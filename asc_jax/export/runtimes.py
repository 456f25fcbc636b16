"""Runs the exported artifacts in their real runtimes (imported only when used).

  TensorFlow Lite for Microcontrollers  tflite-micro   (tflite_micro.runtime.Interpreter)
  TensorFlow Lite                        ai-edge-litert (ai_edge_litert.interpreter.Interpreter)
  ONNX Runtime                           onnxruntime    (CPU execution provider)
These packages are in asc_jax's `test` extra: pip install -e '.[test]'.
"""

import contextlib
import os
import re
import tempfile
from typing import Iterator

import numpy as np


def _missing(package: str, error: ImportError) -> ImportError:
  return ImportError(f'{package} is not installed ({error}); pip install -e ".[test]" installs '
                     'the runtimes the export is checked with.')


@contextlib.contextmanager
def _captured_stderr(into: list) -> Iterator[None]:
  """Collects what C++ code writes to file descriptor 2 (TFLM's allocation report) into `into`."""
  saved = os.dup(2)
  with tempfile.TemporaryFile() as capture:
    os.dup2(capture.fileno(), 2)
    try:
      yield
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      into.append(capture.read().decode('utf-8', 'replace'))


def tflite_micro_interpreter(model: bytes, arena_size: int):
  try:
    from tflite_micro import runtime
  except ImportError as error:
    raise _missing('tflite-micro', error) from error
  return runtime.Interpreter.from_bytes(model, arena_size=arena_size)


def run_tflite_micro(model: bytes, inputs: np.ndarray, arena_size: int) -> np.ndarray:
  """Raw int8 outputs [N, classes] of TFLite Micro, one clip per invoke (inputs [N, F, T, 1])."""
  interpreter = tflite_micro_interpreter(model, arena_size)
  outputs = []
  for clip in inputs:
    interpreter.set_input(clip[None], 0)
    interpreter.invoke()
    outputs.append(np.array(interpreter.get_output(0)).reshape(-1))
  return np.stack(outputs)


def tflite_micro_arena_bytes(model: bytes) -> int:
  """The tensor arena (bytes) TFLite Micro uses for this model: its RecordingMicroAllocator's
  total after one invoke in an ample arena (64-bit host build: pointers and structs are larger
  than on a 32-bit microcontroller, so this is an upper bound there). Probing smaller arenas is
  not an option: this TFLM build can crash when an allocation fails part-way."""
  interpreter = tflite_micro_interpreter(model, max(1 << 22, 16 * len(model)))
  details = interpreter.get_input_details(0)
  interpreter.set_input(np.zeros(details['shape'], details['dtype']), 0)
  interpreter.invoke()
  report: list[str] = []
  with _captured_stderr(report):
    interpreter.print_allocations()
  found = re.search(r'Arena allocation total (\d+) bytes', ''.join(report))
  if not found:
    raise RuntimeError('tflite-micro printed no arena total: ' + ''.join(report)[:500])
  return int(found.group(1))


def run_litert(model: bytes, inputs: np.ndarray) -> np.ndarray:
  """Raw int8 outputs of the TFLite interpreter (reference kernels, as TFLite Micro uses)."""
  try:
    from ai_edge_litert import interpreter as litert
  except ImportError as error:
    raise _missing('ai-edge-litert', error) from error
  interpreter = litert.Interpreter(model_content=model,
                                   experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
  interpreter.allocate_tensors()
  input_index = interpreter.get_input_details()[0]['index']
  output_index = interpreter.get_output_details()[0]['index']
  outputs = []
  for clip in inputs:
    interpreter.set_tensor(input_index, clip[None])
    interpreter.invoke()
    outputs.append(interpreter.get_tensor(output_index).reshape(-1).copy())
  return np.stack(outputs)


def run_onnxruntime(model: bytes, logmel: np.ndarray, batch_size: int = 64) -> np.ndarray:
  """float32 logits [N, classes] from ONNX Runtime's CPU provider for log-mels [N, F, T]."""
  try:
    import onnxruntime
  except ImportError as error:
    raise _missing('onnxruntime', error) from error
  options = onnxruntime.SessionOptions()
  options.intra_op_num_threads = 1
  session = onnxruntime.InferenceSession(model, options, providers=['CPUExecutionProvider'])
  name = session.get_inputs()[0].name
  parts = [session.run(None, {name: np.asarray(logmel[start:start + batch_size], np.float32)})[0]
           for start in range(0, len(logmel), batch_size)]
  return np.concatenate(parts)
