"""Feature extraction and TAU dataset-build throughput on TAU-shaped audio, one core against all.

Writes `--clips` WAV files shaped like TAU Urban Acoustic Scenes 2020 Mobile (10 s, 44.1 kHz,
mono, 24-bit PCM, noise) in the TAU layout into a temporary directory, then measures
  extract   asc_jax.features.extract_logmel on `--extract_clips` files, one process, one BLAS
            thread (read + log-mel);
  build     the real TAU TFDS builder (validation, extraction, array_record shards), each in a
            fresh process building into its own data_dir:
              1 core     the process pinned to one core (sched_setaffinity), num_workers=1 and
                         one BLAS thread;
              all cores  num_workers=0 (a worker process per core).
The builds alternate, `--rounds` times each; the table keeps each one's fastest round. The
speed-up is the ratio of the two build times. Process start-up and imports are not timed; the
worker pool's start-up is, as it is part of every build (a fixed ~2 s, which is why the
default is 2,048 clips: the real development set has about 17,000).

  python benchmarks/features.py --clips=2048 --rounds=2
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import flags

from asc_jax import features as features_lib
from asc_jax.data import extraction
from asc_jax.data import tau2020

import harness

_CLIPS = flags.DEFINE_integer('clips', 2048, 'WAV files to write (3/4 train, 1/4 test; 2.6 GB).')
_ROUNDS = flags.DEFINE_integer('rounds', 2, 'Alternating builds per core count (fastest kept).')
_EXTRACT_CLIPS = flags.DEFINE_integer('extract_clips', 32, 'Files for the in-process extraction.')
_CHILD_BUILD = flags.DEFINE_string('child_build', '',
                                   'Internal: ROOT,DATA_DIR,CORES: time one build here.')

def time_extraction(root: str, config, num_clips: int) -> dict:
  audio = os.path.join(root, 'audio')
  paths = sorted(os.path.join(audio, name) for name in os.listdir(audio))[:num_clips]
  features_lib.extract_logmel(paths[0], config.features)   # warm caches (filterbank, imports).
  start = time.perf_counter()
  for path in paths:
    features_lib.extract_logmel(path, config.features)
  seconds = time.perf_counter() - start
  return dict(stage='extract (1 process, 1 thread)', cores=1, clips=len(paths),
              seconds=round(seconds, 2), clips_per_s=round(len(paths) / seconds, 2))


def build_here(spec: str) -> None:
  """Child process: pins itself to CORES cores, builds ROOT into DATA_DIR, prints the seconds."""
  root, data_dir, cores = spec.split(',')
  cores = int(cores)
  if cores < len(os.sched_getaffinity(0)):
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])
  config = harness.experiment_config('mod8')
  config.data.update(manual_dir=root, data_dir=data_dir, num_workers=1 if cores == 1 else 0)
  builder = tau2020.TauUrbanAcousticScenes2020Mobile.from_config(config)
  start = time.perf_counter()
  builder.build()
  print(json.dumps(dict(seconds=time.perf_counter() - start)))


def build_seconds(root: str, data_dir: str, cores: int) -> float:
  """One build in a fresh process, into a fresh `data_dir`."""
  shutil.rmtree(data_dir, ignore_errors=True)
  environment = {**os.environ, **(extraction.ONE_BLAS_THREAD if cores == 1 else {})}
  completed = subprocess.run([sys.executable, __file__, f'--child_build={root},{data_dir},{cores}'],
                             capture_output=True, text=True, check=False, env=environment)
  if completed.returncode:
    raise RuntimeError(f'the {cores}-core build failed:\n{completed.stderr[-3000:]}')
  return json.loads(completed.stdout.strip().splitlines()[-1])['seconds']


def build_row(cores: int, times: list) -> dict:
  seconds = min(times)
  return dict(stage=f'TAU build ({cores} core{"s" if cores > 1 else ""})', cores=cores,
              clips=_CLIPS.value, seconds=round(seconds, 2),
              clips_per_s=round(_CLIPS.value / seconds, 2))


def main(argv):
  del argv
  if _CHILD_BUILD.value:
    build_here(_CHILD_BUILD.value)
    return
  config = harness.experiment_config('mod8')
  all_cores = len(os.sched_getaffinity(0))
  with tempfile.TemporaryDirectory(prefix='asc_jax_features_') as scratch:
    root = os.path.join(scratch, 'tau')
    harness.write_tau_shaped(root, _CLIPS.value)
    os.environ.update(extraction.ONE_BLAS_THREAD)   # the in-process extraction: one core.
    rows = [time_extraction(root, config, _EXTRACT_CLIPS.value)]
    times = {1: [], all_cores: []}
    for _ in range(_ROUNDS.value):
      for cores, cores_times in times.items():
        cores_times.append(build_seconds(root, os.path.join(scratch, 'tfds'), cores))
    rows += [build_row(cores, cores_times) for cores, cores_times in times.items()]
  speedup = round(rows[2]['clips_per_s'] / rows[1]['clips_per_s'], 2)
  harness.print_table(rows, list(rows[0]))
  print(f'build speed-up, {all_cores} cores over 1: {speedup}x (audio: {harness.TAU_SECONDS:.0f} s, '
        f'{harness.TAU_SAMPLE_RATE} Hz, mono, PCM_24; features {config.features.n_mels} mels x '
        f'{features_lib.num_frames(config.features)} frames)')
  harness.write_results('features', dict(rows=rows, build_speedup=speedup,
                                         build_seconds_per_round=times))


if __name__ == '__main__':
  harness.run(main)
