"""python -m asc_jax.export: deployment artifacts of a compressed run (asc_jax/export/artifacts.py).

  python -m asc_jax.export --workdir=RUN_compressed --format=all --out=RUN_compressed/deploy
  python -m asc_jax.export --workdir=RUN_compressed --format=tflite,c --out=DIR

--workdir is the directory python -m asc_jax.compress wrote (config.json + export/); it is only
read. The report compares every artifact, run in its own runtime, with the int8 NumPy runtime on
the test split of the dataset the model was trained on, and a fully integer .tflite also with the
TFLM-exact runtime (asc_jax/export/tflite_integer.py).
"""

import sys

from absl import app
from absl import flags

from asc_jax import console

flags.DEFINE_string('workdir', None, 'Compressed workdir (python -m asc_jax.compress --workdir).')
flags.DEFINE_list('format', ['all'], 'tflite, onnx, c (the .tflite as a C header), or all.')
flags.DEFINE_string('out', None, 'Output directory (created; default WORKDIR/deploy).')
flags.DEFINE_integer('calibration_clips', 256,
                     'Training clips that calibrate the ranges of tensors between convolutions.')
flags.DEFINE_integer('max_clips', 0, 'Score only the first N test clips (0 = all).')
flags.DEFINE_enum('tflite_activations', 'int8', ['int8', 'mixed', 'int16', 'float'],
                  'TFLite activations: int8 = every tensor int8 (tflite-micro, ai-edge-litert and '
                  'the TFLM-exact runtime give the same integers); mixed = int8 convolutions (int8 '
                  'in and out, int32 biases) with int16 sums, ResNorm, SiLU and logits between '
                  'them; int16 = 16x8 convolutions too (int64 biases). Convolution inputs are int8 '
                  'at their QAT scales in all three. float = not fully integer: int8 weights and '
                  'int8-rounded convolution inputs, float32 kernels that compute the int8 '
                  'runtime\'s own arithmetic (agrees with it on every clip measured; '
                  'asc_jax/export/tflite_float.py).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  values = flags.FLAGS
  if not values.workdir:
    raise app.UsageError('give --workdir=COMPRESSED_RUN [--format=tflite,onnx,c|all] [--out=DIR].')
  console.setup()   # third-party INFO lines (TFDS, Orbax) off the console unless --verbosity.
  import os
  from asc_jax.export import artifacts   # Imported here: --help must not load the model stack.
  formats = artifacts.FORMATS if 'all' in values.format else tuple(values.format)
  out = values.out or os.path.join(values.workdir, 'deploy')
  try:
    artifacts.export(values.workdir, out, formats, values.calibration_clips, values.max_clips,
                     values.tflite_activations)
  except (FileNotFoundError, ValueError, ImportError) as error:
    print(f'error: {error}', file=sys.stderr)
    return 1
  with open(os.path.join(out, artifacts.REPORT_MARKDOWN), encoding='utf-8') as file:
    print(file.read())
  return 0


if __name__ == '__main__':
  app.run(main)
