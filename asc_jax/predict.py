"""Classify audio files with a trained workdir: any WAV/FLAC rate and channel count.

  python -m asc_jax.predict --workdir=/tmp/asc_quickstart clip.wav more_clips/
  python -m asc_jax.predict --workdir=DIR --json --top_k=5 clip.flac
  python -m asc_jax.predict --workdir=COMPRESSED_DIR --int8 clip.wav   (the int8 export)
  python -m asc_jax.predict --workdir=COMPRESSED_DIR --tflite=DEPLOY/model_int8.tflite clip.wav
      (a fully integer .tflite from python -m asc_jax.export, computed as TFLite Micro computes
      it: asc_jax/export/deployed.py)
  python -m asc_jax.predict --workdir=DIR --per_window --hop_s=2.5 long_recording.wav
  python -m asc_jax.predict --workdir=DIR --dcase_csv=submission.csv evaluation/audio

Recordings of any length: one that is shorter than the training clip is zero-padded to it; a
longer one is classified in windows of the training clip length every --hop_s seconds (default
half a window, the last window ending at the end of the recording), and the window logits are
averaged. Both cases are said on stderr and kept in the JSON ('framing', 'windows', 'note');
nothing is cropped. --dcase_csv writes the DCASE Task 1A output (TAB-separated: filename,
scene_label, one probability column per class in the official order) atomically and prints the
predicted class distribution.

Folders are searched recursively for .wav and .flac files (in sorted order). A file that cannot be
read is reported on stderr with the reason and the others are still classified; the exit code is 1
when any file failed.
"""

import json
import os
import sys
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags

from asc_jax import console
from asc_jax import features
from asc_jax import fileio

AUDIO_EXTENSIONS = ('.wav', '.flac')
DCASE_CLASSES = ('airport', 'bus', 'metro', 'metro_station', 'park', 'public_square',
                 'shopping_mall', 'street_pedestrian', 'street_traffic', 'tram')


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
  """A function: log-mel batch [N, F, T] -> float32 logits [N, K] (jitted for a Flax model)."""
  if not hasattr(bundle.model, 'apply'):   # an int8 export or a .tflite: NumPy, not jittable
    return lambda logmel: np.asarray(bundle.model.logits(logmel), np.float32)

  @jax.jit
  def classify(variables, logmel):
    return bundle.model.apply(variables, logmel, train=False).astype(jnp.float32)

  return lambda logmel: np.asarray(classify(bundle.variables, logmel))


def _classify_batch(classify, logmels: list[np.ndarray], batch_size: int) -> np.ndarray:
  """Logits of up to `batch_size` windows, zero-padded to one shape so jit compiles once."""
  batch = np.zeros((batch_size, *logmels[0].shape), dtype=np.float32)
  batch[:len(logmels)] = np.stack(logmels)
  return classify(batch)[:len(logmels)]


def load_recording(path: str, sample_rate: int) -> np.ndarray:
  """The whole recording as float32 mono at `sample_rate` (no padding, no cropping)."""
  samples, source_rate = features.read_checked(path)
  if samples.shape[0] == 0:
    raise features.AudioError(f'{path}: the file holds no samples.')
  if not np.all(np.isfinite(samples)):
    raise features.AudioError(f'{path}: some samples are NaN or infinite.')
  mono = samples.mean(axis=1, dtype=np.float32)
  return features.to_rate(mono, int(source_rate), int(sample_rate)).astype(np.float32)


def window_starts(length: int, window: int, hop: int) -> list[int]:
  """Start samples of the windows covering `length` samples: one (zero-padded) window when the
  recording is not longer than a window; else every `hop`, plus a last window ending at the end
  when the hops do not reach it, so that no sample is left out."""
  if length <= window:
    return [0]
  starts = list(range(0, length - window + 1, hop))
  if starts[-1] + window < length:
    starts.append(length - window)
  return starts


def framing_note(path: str, length: int, window: int, hop: int, rate: int, count: int) -> str:
  """What happened to a recording's length, in words (printed on stderr and kept in results)."""
  seconds, window_s = length / rate, window / rate
  if length < window:
    return (f'{path}: {seconds:.2f} s is shorter than the {window_s:g} s training clip: '
            f'zero-padded to {window_s:g} s.')
  if length == window:
    return ''
  return (f'{path}: {seconds:.2f} s is longer than the {window_s:g} s training clip: '
          f'{count} windows, hop {hop / rate:g} s, window logits averaged.')


def predict_recording(bundle: Any, classify, path: str, batch_size: int, hop_s: Optional[float],
                      per_window: bool) -> dict:
  """One file's result: mean of its windows' logits -> label and probabilities."""
  params = features.feature_params(bundle.config.features)
  rate = params['sample_rate']
  window = features.num_samples(params)
  hop = max(1, int(round((hop_s if hop_s else params['duration_s'] / 2) * rate)))
  waveform = load_recording(path, rate)
  starts = window_starts(len(waveform), window, hop)
  logmels = [features.logmel(features.fit_length(waveform[start:start + window], window), params)
             for start in starts]
  logits = np.concatenate([_classify_batch(classify, logmels[i:i + batch_size], batch_size)
                           for i in range(0, len(logmels), batch_size)])
  mean = logits.mean(axis=0)
  probabilities = np.asarray(jax.nn.softmax(mean))
  result = dict(path=path, label=bundle.class_names[int(np.argmax(mean))],
                probabilities=dict(zip(bundle.class_names, map(float, probabilities))),
                duration_s=len(waveform) / rate, windows=len(starts),
                framing='padded' if len(waveform) < window else
                ('exact' if len(waveform) == window else 'windowed'))
  note = framing_note(path, len(waveform), window, hop, rate, len(starts))
  if note:
    result['note'] = note
  if per_window:
    window_probabilities = np.asarray(jax.nn.softmax(logits, axis=-1))
    result['per_window'] = [
        dict(start_s=start / rate, end_s=min(start + window, len(waveform)) / rate,
             label=bundle.class_names[int(np.argmax(row))],
             probabilities=dict(zip(bundle.class_names, map(float, row))))
        for start, row in zip(starts, window_probabilities)]
  return result


def predict_files(bundle: Any, paths: Sequence[str], batch_size: int = 16,
                  hop_s: Optional[float] = None, per_window: bool = False) -> list[dict]:
  """One result per path, in order: {'path', 'label', 'probabilities': {class: p}, 'duration_s',
  'windows', 'framing' (padded | exact | windowed), ['note'], ['per_window']} or, for a file that
  cannot be turned into features, {'path', 'error': reason naming the file}. Recordings of any
  length: windows of the training clip length every hop_s seconds (default half a window)."""
  classify = make_classifier(bundle)
  results = []
  for path in console.progress(paths, desc='predict', unit='file', leave=False):
    try:
      results.append(predict_recording(bundle, classify, path, batch_size, hop_s, per_window))
    except features.AudioError as error:
      results.append({'path': path, 'error': str(error)})
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
  classified = [result for result in results if 'error' not in result]
  for (path, label, top), result in zip(rows, classified):
    lines.append(f'{path:<{path_width}}  {label:<{label_width}}  {top}')
    for window in result.get('per_window', []):
      span = f'  {window["start_s"]:7.2f}-{window["end_s"]:.2f} s'
      lines.append(f'{span:<{path_width}}  {window["label"]:<{label_width}}')
  return '\n'.join(lines)


def to_json(results: Sequence[dict], k: int) -> str:
  entries = [result if 'error' in result else
             {**result, 'top_k': [{'label': name, 'probability': p}
                                  for name, p in top_classes(result, k)]}
             for result in results]
  return json.dumps(entries, indent=2)

def submission_names(paths: Sequence[str]) -> dict[str, str]:
  """File -> its name in a submission: `<folder name>/<path below the folder>` for files found in
  a folder argument (e.g. audio/0.wav for the folder .../audio), the base name for files."""
  names = {}
  for path in paths:
    if os.path.isdir(path):
      base = os.path.basename(os.path.normpath(path))
      for found in collect_audio_files([path]):
        names[found] = '/'.join([base, *os.path.relpath(found, path).split(os.sep)])
    else:
      names[path] = os.path.basename(path)
  return names


def dcase_class_order(class_names: Sequence[str]) -> tuple[str, ...]:
  """The official Task 1A column order when the model has exactly its classes, else its own."""
  return DCASE_CLASSES if sorted(class_names) == sorted(DCASE_CLASSES) else tuple(class_names)


def dcase_submission(results: Sequence[dict], names: dict[str, str], class_names: Sequence[str]
                     ) -> str:
  """DCASE Task 1A output: TAB-separated, header `filename scene_label <classes...>`, one row per
  classified file with the predicted label and each class's probability."""
  order = dcase_class_order(class_names)
  lines = ['\t'.join(('filename', 'scene_label', *order))]
  for result in results:
    if 'error' in result:
      continue
    probabilities = result['probabilities']
    lines.append('\t'.join((names.get(result['path'], result['path']), result['label'],
                            *(f'{probabilities[name]:.6f}' for name in order))))
  return '\n'.join(lines) + '\n'


def class_distribution(results: Sequence[dict], class_names: Sequence[str]) -> str:
  """How many files were given each label, with percentages (every class listed)."""
  labels = [result['label'] for result in results if 'error' not in result]
  total = max(1, len(labels))
  width = max(len(name) for name in class_names)
  rows = [f'  {name:<{width}}  {labels.count(name):6d}  {100 * labels.count(name) / total:5.1f} %'
          for name in class_names]
  return '\n'.join([f'predicted class distribution ({len(labels)} files):', *rows])


def define_flags() -> None:
  """Command-line flags; defined only when run as a program, so importing this module
  next to other command modules defines no clashing flags."""
  flags.DEFINE_string('workdir', None, 'Workdir of a finished training run.')
  flags.DEFINE_bool('json', False, 'Print a JSON list instead of a table.')
  flags.DEFINE_integer('top_k', 3, 'How many of the most probable classes to print.')
  flags.DEFINE_integer('batch_size', 16, 'Windows per forward pass.')
  flags.DEFINE_bool('int8', False, 'Use the int8 export of --workdir (written by '
                    'python -m asc_jax.compress), run by the NumPy integer runtime.')
  flags.DEFINE_string('tflite', None, 'Classify with this fully integer .tflite (python -m '
                      'asc_jax.export, exported from --workdir) through asc_jax\'s TFLM-exact '
                      'runtime: the integers TensorFlow Lite Micro computes on a device.')
  flags.DEFINE_enum('checkpoint', 'latest', ['latest', 'best'],
                    'Which checkpoint of the workdir to use.')
  flags.DEFINE_float('hop_s', None, 'Seconds between the windows of a recording longer than the '
                     'training clip (default: half a window).')
  flags.DEFINE_bool('per_window', False, 'Also report every window\'s label and probabilities.')
  flags.DEFINE_string('dcase_csv', None, 'Write a DCASE Task 1A submission file (TAB-separated) '
                      'for all classified files to this path.')


def main(argv: Sequence[str]) -> int:
  paths = argv[1:]
  if flags.FLAGS.workdir is None or not paths:
    raise app.UsageError('usage: python -m asc_jax.predict --workdir=DIR [--json] [--top_k=3] '
                         '[--hop_s=S] [--per_window] [--dcase_csv=OUT.csv] PATH...  '
                         '(audio files or folders)')
  if flags.FLAGS.hop_s is not None and flags.FLAGS.hop_s <= 0:
    raise app.UsageError(f'--hop_s={flags.FLAGS.hop_s}: give a positive number of seconds.')
  console.setup()   # third-party INFO lines (Orbax restores, TFDS) off the console unless --verbosity.
  from asc_jax import inference  # Imported here: --help must not load the model stack.
  try:
    names = submission_names(paths)
    files = list(names)
    if flags.FLAGS.tflite:
      from asc_jax.export import deployed  # Imported here, like inference.
      bundle = deployed.load_inference_bundle(flags.FLAGS.workdir, flags.FLAGS.tflite)
    elif flags.FLAGS.int8:
      from asc_jax.compress import export  # Imported here, like inference.
      bundle = export.load_inference_bundle(flags.FLAGS.workdir)
    else:
      bundle = inference.load_for_inference(flags.FLAGS.workdir, flags.FLAGS.checkpoint)
  except (FileNotFoundError, ValueError) as error:
    print(f'error: {error}', file=sys.stderr)
    return 1
  results = predict_files(bundle, files, flags.FLAGS.batch_size, flags.FLAGS.hop_s,
                          flags.FLAGS.per_window)
  for result in results:
    if result.get('note'):
      print(f'note: {result["note"]}', file=sys.stderr)
  top_k = flags.FLAGS.top_k
  output = to_json(results, top_k) if flags.FLAGS.json else format_table(results, top_k)
  if output:
    print(output)
  if flags.FLAGS.dcase_csv:
    fileio.atomic_write_text(flags.FLAGS.dcase_csv,
                             dcase_submission(results, names, bundle.class_names))
    print(f'wrote {flags.FLAGS.dcase_csv}\n' + class_distribution(results, bundle.class_names),
          file=sys.stderr)
  failed = [result for result in results if 'error' in result]
  for result in failed:
    print(f'error: {result["error"]}', file=sys.stderr)
  if failed:
    print(f'{len(failed)} of {len(results)} files could not be classified.', file=sys.stderr)
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
