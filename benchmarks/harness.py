"""Shared pieces of the benchmark scripts: the real config, step and state, timing, tables, JSON.

The steps timed here are asc_jax's own, compiled by the one builder (asc_jax.builder): the
classifier's train step with the optax chain of config.train (augmentation included, state
donated) and its eval step, on a one-device mesh. Results go to benchmarks/results/<name>.json.
"""

import csv
import datetime
import importlib.util
import json
import os
import platform
import statistics
import tempfile
import time
import types
from typing import Any, Callable, Sequence

from absl import app
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import soundfile

from asc_jax import builder
from asc_jax import console
from asc_jax import host_memory
from asc_jax import parallel
from asc_jax.data import tau2020

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, 'benchmarks', 'results')
TAU_SAMPLE_RATE = 44100
TAU_SECONDS = 10.0


def run(main: Callable) -> None:
  """Runs a benchmark's absl main the way asc_jax's commands run: host_memory's huge pages, and
  the quiet console of asc_jax.console (third-party INFO logs off unless --verbosity asks)."""
  host_memory.reexec_with_huge_pages()

  def quiet_main(argv):
    console.setup()
    return main(argv)

  app.run(quiet_main)


def experiment_config(variant: str = 'mod8', **model_overrides) -> ml_collections.ConfigDict:
  """configs/bcresnet.py:<variant>, with config.model keys overridden."""
  spec = importlib.util.spec_from_file_location('bcresnet_config',
                                                os.path.join(ROOT, 'configs', 'bcresnet.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(variant)
  config.model.update(model_overrides)
  return config


def random_batch(config: ml_collections.ConfigDict, batch_size: int, frames: int,
                 seed: int = 0) -> dict[str, jax.Array]:
  """Random log-mels [B, n_mels, frames] and labels [B]."""
  key_x, key_y = jax.random.split(jax.random.key(seed))
  return {'logmel': jax.random.normal(key_x, (batch_size, config.features.n_mels, frames)),
          'label': jax.random.randint(key_y, (batch_size,), 0, config.model.num_classes)}


def compiled_run(config: ml_collections.ConfigDict, frames: int,
                 devices: Sequence[jax.Device] = ()) -> builder.Run:
  """asc_jax's classifier run for [n_mels, frames] inputs on `devices` (default: the first
  device; 100 steps an epoch for the schedule)."""
  shape = types.SimpleNamespace(input_shape=(config.features.n_mels, frames),
                                num_examples={'train': 100 * config.train.batch_size})
  return builder.compile_task(builder.classifier_task(config, shape),
                              parallel.make_mesh(list(devices) or jax.devices()[:1]))


class TrainRunner:
  """Calls the train step on one batch, carrying the (donated) state from call to call."""

  def __init__(self, config: ml_collections.ConfigDict, batch_size: int, frames: int):
    self.run = compiled_run(config, frames)
    self.state = self.run.init(jax.random.key(config.seed))
    self.batch = self.run.global_batch(random_batch(config, batch_size, frames))
    self.key = self.run.base_key(0)

  def __call__(self) -> None:
    self.state, metrics = self.run.train_step(self.state, self.batch, self.key)
    jax.block_until_ready(metrics)


class EvalRunner:
  """Calls the eval step on one batch."""

  def __init__(self, config: ml_collections.ConfigDict, batch_size: int, frames: int):
    self.run = compiled_run(config, frames)
    self.state = self.run.init(jax.random.key(config.seed))
    self.batch = self.run.eval_batch(random_batch(config, batch_size, frames))

  def __call__(self) -> None:
    jax.block_until_ready(self.run.eval_step(self.state, self.batch))


def write_tau_shaped(root: str, num_clips: int, seed: int = 0) -> None:
  """num_clips noise WAVs in the TAU 2020 Mobile layout (audio/, meta.csv, evaluation_setup/
  fold1_*.csv): 10 s, 44.1 kHz, mono, PCM_24; every fourth clip in the test split."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, 'audio'))
  os.makedirs(os.path.join(root, 'evaluation_setup'))
  rows = []
  for index in range(num_clips):
    scene = tau2020.SCENES[index % len(tau2020.SCENES)]
    device = tau2020.DEVICES[index % 3]
    filename = f'audio/{scene}-barcelona-{index}-{index}-{device}.wav'
    samples = 0.1 * rng.standard_normal(int(TAU_SAMPLE_RATE * TAU_SECONDS))
    soundfile.write(os.path.join(root, filename), samples, TAU_SAMPLE_RATE, subtype='PCM_24')
    rows.append((filename, scene, f'barcelona-{index}', device, 'test' if index % 4 == 3 else 'train'))
  _write_tsv(os.path.join(root, 'meta.csv'),
             [('filename', 'scene_label', 'identifier', 'source_label')] + [r[:4] for r in rows])
  for split, name in (('train', 'fold1_train.csv'), ('test', 'fold1_evaluate.csv')):
    _write_tsv(os.path.join(root, 'evaluation_setup', name),
               [('filename', 'scene_label')] + [r[:2] for r in rows if r[4] == split])


def _write_tsv(path: str, rows: list) -> None:
  with open(path, 'w', newline='') as file:
    csv.writer(file, delimiter='\t').writerows(rows)


def time_calls(function: Callable[[], None], steps_timed: int, warmup: int = 1) -> dict:
  """Seconds of the first call (compilation), then median and minimum of `steps_timed` calls."""
  start = time.perf_counter()
  function()
  first = time.perf_counter() - start
  for _ in range(warmup):
    function()
  times = []
  for _ in range(steps_timed):
    start = time.perf_counter()
    function()
    times.append(time.perf_counter() - start)
  return dict(first_call_s=round(first, 2), median_step_s=round(statistics.median(times), 4),
              min_step_s=round(min(times), 4))


MALLOC_SETTINGS = ('shipped', 'asc_jax')


def torch_environment(malloc: str) -> dict[str, str]:
  """This process's environment for PyTorch: glibc as it ships, or with the huge-page tunable
  asc_jax sets for itself (malloc='asc_jax', where the machine supports it)."""
  environment = dict(os.environ)
  tunables = [part for part in environment.pop('GLIBC_TUNABLES', '').split(':')
              if part and not part.startswith(host_memory.TUNABLE)]
  if tunables:
    environment['GLIBC_TUNABLES'] = ':'.join(tunables)
  if malloc == 'asc_jax':
    environment = host_memory.huge_page_environment(environment) or environment
  return environment


def machine() -> dict:
  """What the figures were measured on."""
  cpu = platform.processor()
  if os.path.exists('/proc/cpuinfo'):
    with open('/proc/cpuinfo') as cpuinfo:
      names = [line.split(':', 1)[1].strip() for line in cpuinfo if line.startswith('model name')]
    cpu = names[0] if names else cpu
  return dict(cpu=cpu, cores=os.cpu_count(), load_average_1min=round(os.getloadavg()[0], 2),
              jax=jax.__version__, backend=jax.default_backend(),
              device=jax.devices()[0].device_kind, python=platform.python_version(),
              date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))


def print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
  widths = [max(len(column), *(len(str(row.get(column, ''))) for row in rows)) for column in columns]
  print('  '.join(column.rjust(width) for column, width in zip(columns, widths)))
  for row in rows:
    print('  '.join(str(row.get(column, '')).rjust(width) for column, width in zip(columns, widths)))


def write_results(name: str, payload: Any) -> str:
  """benchmarks/results/<name>.json (see write_json)."""
  return write_json(os.path.join(RESULTS_DIR, f'{name}.json'), payload)


def write_json(path: str, payload: Any) -> str:
  """{'machine': machine(), 'results': payload} at `path`, written to a temporary file first
  and renamed."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  handle, temporary = tempfile.mkstemp(dir=directory, suffix='.tmp')
  with os.fdopen(handle, 'w') as output:
    json.dump({'machine': machine(), 'results': payload}, output, indent=2, default=_plain)
  os.replace(temporary, path)
  print(f'wrote {path}')
  return path


def _plain(value: Any) -> Any:
  if isinstance(value, (np.generic, jnp.ndarray)):
    return np.asarray(value).tolist()
  raise TypeError(f'cannot write {type(value).__name__} to JSON')
