"""Feature extraction and TAU dataset-build throughput on TAU-shaped audio, one core against all.

Writes `--clips` WAV files shaped like TAU Urban Acoustic Scenes 2020 Mobile (10 s, 44.1 kHz,
mono, 24-bit PCM, noise) in the TAU layout (audio/, meta.csv, evaluation_setup/fold1_*.csv)
into a temporary directory, then measures
  extract   asc_jax.features.extract_logmel on each file in this process (read + log-mel);
  build     the real TAU TFDS builder (validation, extraction, array_record shards) with
            config.data.num_workers=1 and with num_workers=0 (every core), each into a fresh
            data_dir; the speed-up is the ratio of the two.

  python benchmarks/features.py --clips=64
"""

import csv
import os
import tempfile
import time

from absl import flags
import numpy as np
import soundfile

from asc_jax import features as features_lib
from asc_jax.data import builder_base
from asc_jax.data import tau2020

import harness

_CLIPS = flags.DEFINE_integer('clips', 64, 'WAV files to write (3/4 train, 1/4 test).')
_EXTRACT_CLIPS = flags.DEFINE_integer('extract_clips', 16, 'Files for the in-process extraction.')

SAMPLE_RATE = 44100
SECONDS = 10.0


def write_tau_shaped(root: str, num_clips: int, seed: int = 0) -> None:
  """num_clips noise WAVs in the TAU layout: 10 s, 44.1 kHz, mono, PCM_24."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, 'audio'))
  os.makedirs(os.path.join(root, 'evaluation_setup'))
  rows = []
  for index in range(num_clips):
    scene = tau2020.SCENES[index % len(tau2020.SCENES)]
    device = tau2020.DEVICES[index % 3]
    filename = f'audio/{scene}-barcelona-{index}-{index}-{device}.wav'
    samples = 0.1 * rng.standard_normal(int(SAMPLE_RATE * SECONDS))
    soundfile.write(os.path.join(root, filename), samples, SAMPLE_RATE, subtype='PCM_24')
    rows.append((filename, scene, f'barcelona-{index}', device, 'test' if index % 4 == 3 else 'train'))
  _write_tsv(os.path.join(root, 'meta.csv'),
             [('filename', 'scene_label', 'identifier', 'source_label')] + [r[:4] for r in rows])
  for split, name in (('train', 'fold1_train.csv'), ('test', 'fold1_evaluate.csv')):
    _write_tsv(os.path.join(root, 'evaluation_setup', name),
               [('filename', 'scene_label')] + [r[:2] for r in rows if r[4] == split])


def _write_tsv(path: str, rows: list) -> None:
  with open(path, 'w', newline='') as file:
    csv.writer(file, delimiter='\t').writerows(rows)


def time_extraction(root: str, config, num_clips: int) -> dict:
  paths = sorted(os.path.join(root, 'audio', name) for name in os.listdir(os.path.join(root, 'audio')))
  paths = paths[:num_clips]
  features_lib.extract_logmel(paths[0], config.features)   # warm caches (filterbank, imports).
  start = time.perf_counter()
  for path in paths:
    features_lib.extract_logmel(path, config.features)
  seconds = time.perf_counter() - start
  return dict(stage='extract (1 process)', workers=1, clips=len(paths), seconds=round(seconds, 2),
              clips_per_s=round(len(paths) / seconds, 2))


def time_build(root: str, config, num_workers: int, data_dir: str) -> dict:
  config.data.update(manual_dir=root, data_dir=data_dir, num_workers=num_workers)
  builder = tau2020.TauUrbanAcousticScenes2020Mobile.from_config(config)
  start = time.perf_counter()
  builder.build()
  seconds = time.perf_counter() - start
  workers = num_workers or builder_base.available_cores()
  return dict(stage=f'TAU build (num_workers={num_workers})', workers=workers, clips=_CLIPS.value,
              seconds=round(seconds, 2), clips_per_s=round(_CLIPS.value / seconds, 2))


def main(argv):
  del argv
  config = harness.experiment_config('mod8')
  with tempfile.TemporaryDirectory(prefix='asc_jax_features_') as scratch:
    root = os.path.join(scratch, 'tau')
    write_tau_shaped(root, _CLIPS.value)
    rows = [time_extraction(root, config, _EXTRACT_CLIPS.value)]
    for num_workers in (1, 0):
      rows.append(time_build(root, config, num_workers, os.path.join(scratch, f'tfds{num_workers}')))
  speedup = round(rows[2]['clips_per_s'] / rows[1]['clips_per_s'], 2)
  harness.print_table(rows, list(rows[0]))
  print(f'build speed-up, all {rows[2]["workers"]} cores over 1: {speedup}x '
        f'(audio: {SECONDS:.0f} s, {SAMPLE_RATE} Hz, mono, PCM_24; '
        f'features {config.features.n_mels} mels x {features_lib.num_frames(config.features)} frames)')
  harness.write_results('features', dict(rows=rows, build_speedup=speedup))


if __name__ == '__main__':
  harness.run(main)
