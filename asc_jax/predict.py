"""Classify audio files with a trained workdir: any WAV/FLAC rate and channel count.

  python -m asc_jax.predict --workdir=/tmp/asc_quickstart clip.wav more_clips/
  python -m asc_jax.predict --workdir=DIR --json --top_k=5 clip.flac
  python -m asc_jax.predict --workdir=COMPRESSED_DIR --int8 clip.wav   (the int8 export)

Folders are searched recursively for .wav and .flac files (in sorted order). A file that cannot be
read is reported on stderr with the reason and the others are still classified; the exit code is 1
when any file failed.
"""

import json
import os
import sys
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from absl import app
from absl import flags
from absl import logging

from asc_jax import features

AUDIO_EXTENSIONS = ('.wav', '.flac')


def collect_audio_files(paths: Sequence[str]) -> list[str]:
  """The given files, and the .wav/.flac files under the given folders (recursive, sorted)."""
  files = []
  for path in paths:
    if os.path.isdir(path):
      found = sorted(os.path.join(root, name) for root, _, names in os.walk(path)
                     for name in names if name.lower().endswith(AUDIO_EXTENSIONS))
      if not found:
        raise FileNotFoundError(f'{path}: the folder holds no .wav or .flac file.')
      files.extend(found)
    elif os.path.isfile(path):
      files.append(path)
    else:
      raise FileNotFoundError(f'{path}: no such file or folder.')
  return files


def make_classifier(bundle: Any):
  """A jitted function: log-mel batch [N, F, T] -> class probabilities [N, K] (float32)."""
  if not hasattr(bundle.model, 'apply'):   # an int8 export: the NumPy runtime, not jittable
    return lambda logmel: np.asarray(jax.nn.softmax(bundle.model.logits(logmel), axis=-1))

  @jax.jit
  def classify(variables, logmel):
    logits = bundle.model.apply(variables, logmel, train=False)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

  return lambda logmel: np.asarray(classify(bundle.variables, logmel))


def _classify_batch(classify, logmels: list[np.ndarray], batch_size: int) -> np.ndarray:
  """Probabilities of up to `batch_size` clips, zero-padded to one shape so jit compiles once."""
  batch = np.zeros((batch_size, *logmels[0].shape), dtype=np.float32)
  batch[:len(logmels)] = np.stack(logmels)
  return classify(batch)[:len(logmels)]


def predict_files(bundle: Any, paths: Sequence[str], batch_size: int = 16) -> list[dict]:
  """One result per path, in order: {'path', 'label', 'probabilities': {class: p}} or, for a file
  that cannot be turned into features, {'path', 'error': reason naming the file}."""
  batch_size = max(1, min(batch_size, len(paths)))   # no padding beyond the files there are
  classify = make_classifier(bundle)
  results: list[dict] = [{'path': path} for path in paths]
  pending: list[tuple[int, np.ndarray]] = []

  def flush():
    probabilities = _classify_batch(classify, [logmel for _, logmel in pending], batch_size)
    for (index, _), row in zip(pending, probabilities):
      results[index]['label'] = bundle.class_names[int(np.argmax(row))]
      results[index]['probabilities'] = dict(zip(bundle.class_names, map(float, row)))
    pending.clear()

  progress = tqdm.tqdm(paths, desc='predict', unit='clip', leave=False)   # rate = clips/s
  for index, path in enumerate(progress):
    try:
      pending.append((index, features.extract_logmel(path, bundle.config.features)))
    except features.AudioError as error:
      results[index]['error'] = str(error)
    if len(pending) == batch_size:
      flush()
  if pending:
    flush()
  return results


def top_classes(result: dict, k: int) -> list[tuple[str, float]]:
  ranked = sorted(result['probabilities'].items(), key=lambda item: item[1], reverse=True)
  return ranked[:k]


def format_table(results: Sequence[dict], k: int) -> str:
  """One line per classified file: path, label and the top-k probabilities in percent."""
  rows = [(result['path'], result['label'],
           '  '.join(f'{name} {100 * p:5.1f}%' for name, p in top_classes(result, k)))
          for result in results if 'error' not in result]
  if not rows:
    return ''
  path_width = max(len('file'), *(len(row[0]) for row in rows))
  label_width = max(len('label'), *(len(row[1]) for row in rows))
  lines = [f'{"file":<{path_width}}  {"label":<{label_width}}  top {k}']
  lines.extend(f'{path:<{path_width}}  {label:<{label_width}}  {top}' for path, label, top in rows)
  return '\n'.join(lines)


def to_json(results: Sequence[dict], k: int) -> str:
  entries = [result if 'error' in result else
             {**result, 'top_k': [{'label': name, 'probability': p}
                                  for name, p in top_classes(result, k)]}
             for result in results]
  return json.dumps(entries, indent=2)

def define_flags() -> None:
  """Command-line flags; defined only when run as a program, so importing this module
  next to other command modules defines no clashing flags."""
  flags.DEFINE_string('workdir', None, 'Workdir of a finished training run.')
  flags.DEFINE_bool('json', False, 'Print a JSON list instead of a table.')
  flags.DEFINE_integer('top_k', 3, 'How many of the most probable classes to print.')
  flags.DEFINE_integer('batch_size', 16, 'Clips per forward pass.')
  flags.DEFINE_bool('int8', False, 'Use the int8 export of --workdir (written by '
                    'python -m asc_jax.compress), run by the NumPy integer runtime.')
  flags.DEFINE_enum('checkpoint', 'latest', ['latest', 'best'],
                    'Which checkpoint of the workdir to use.')


def main(argv: Sequence[str]) -> int:
  paths = argv[1:]
  if flags.FLAGS.workdir is None or not paths:
    raise app.UsageError('usage: python -m asc_jax.predict --workdir=DIR [--json] [--top_k=3] '
                         'PATH...  (audio files or folders)')
  logging.set_verbosity(logging.WARNING)   # Orbax logs every restore step at INFO.
  from asc_jax import inference  # Imported here: --help must not load the model stack.
  try:
    files = collect_audio_files(paths)
    if flags.FLAGS.int8:
      from asc_jax.compress import export  # Imported here, like inference.
      bundle = export.load_inference_bundle(flags.FLAGS.workdir)
    else:
      bundle = inference.load_for_inference(flags.FLAGS.workdir, flags.FLAGS.checkpoint)
  except FileNotFoundError as error:
    print(f'error: {error}', file=sys.stderr)
    return 1
  results = predict_files(bundle, files, flags.FLAGS.batch_size)
  top_k = flags.FLAGS.top_k
  output = to_json(results, top_k) if flags.FLAGS.json else format_table(results, top_k)
  if output:
    print(output)
  failed = [result for result in results if 'error' in result]
  for result in failed:
    print(f'error: {result["error"]}', file=sys.stderr)
  if failed:
    print(f'{len(failed)} of {len(results)} files could not be classified.', file=sys.stderr)
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
