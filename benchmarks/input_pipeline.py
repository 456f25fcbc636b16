"""Input pipeline throughput: clips/s the Grain training iterator delivers from a prepared TAU
dataset, against the clips/s the train step consumes.

Builds a TAU-shaped dataset (harness.write_tau_shaped writes the audio; the real TAU builder
prepares it: 256 x 431 float32 log-mels in array_record shards), then reads batches from
asc_jax.data.input_pipeline.train_iterator (shuffled, batched, endless) as training does. The train
step's clips/s comes from benchmarks/results/step_throughput_mod8_float32.json (train rows, the
nearest batch size) when present (run benchmarks/step_throughput.py first), else from
--train_clips_per_s.

  python benchmarks/input_pipeline.py --batch=32 --batches=40
"""

import json
import os
import tempfile
import time

from absl import flags

from asc_jax.data import datasets
from asc_jax.data import input_pipeline

import harness

_CLIPS = flags.DEFINE_integer('clips', 96, 'TAU-shaped clips to prepare.')
_BATCH = flags.DEFINE_integer('batch', 32, 'Global batch size.')
_BATCHES = flags.DEFINE_integer('batches', 40, 'Batches to read after the first.')
_TRAIN_CLIPS_PER_S = flags.DEFINE_float(
    'train_clips_per_s', 0.0, 'Train-step clips/s to compare with (0: read the step_throughput JSON).')


def train_step_clips_per_s(batch_size: int) -> float:
  if _TRAIN_CLIPS_PER_S.value:
    return _TRAIN_CLIPS_PER_S.value
  path = os.path.join(harness.RESULTS_DIR, 'step_throughput_mod8_float32.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} is missing: run benchmarks/step_throughput.py first or pass '
                            '--train_clips_per_s.')
  with open(path) as file:
    rows = [row for row in json.load(file)['results'] if row['mode'] == 'train']
  row = min(rows, key=lambda row: abs(row['batch'] - batch_size))
  return row['clips_per_s']


def main(argv):
  del argv
  config = harness.experiment_config('mod8')
  with tempfile.TemporaryDirectory(prefix='asc_jax_pipeline_') as scratch:
    root = os.path.join(scratch, 'tau')
    harness.write_tau_shaped(root, _CLIPS.value)
    config.data.update(manual_dir=root, data_dir=os.path.join(scratch, 'tfds'), num_workers=0)
    dataset = datasets.prepare(config)
    iterator = input_pipeline.train_iterator(dataset.sources['train'], global_batch_size=_BATCH.value,
                                       seed=0, device_names=dataset.device_names)
    next(iterator)
    start = time.perf_counter()
    for _ in range(_BATCHES.value):
      batch = next(iterator)
    seconds = time.perf_counter() - start
  delivered = _BATCHES.value * _BATCH.value / seconds
  consumed = train_step_clips_per_s(_BATCH.value)
  row = dict(batch=_BATCH.value, logmel=f'{batch["logmel"].shape[1]}x{batch["logmel"].shape[2]}',
             batches=_BATCHES.value, seconds=round(seconds, 3),
             pipeline_clips_per_s=round(delivered, 1), train_step_clips_per_s=consumed,
             headroom=round(delivered / consumed, 1))
  harness.print_table([row], list(row))
  harness.write_results('input_pipeline', row)


if __name__ == '__main__':
  harness.run(main)
