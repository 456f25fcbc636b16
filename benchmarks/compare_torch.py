"""asc_jax against a PyTorch reference implementation of BC-ResNet-Mod, alternating.

Both run BC-ResNet-Mod-k on the same random [batch, mels, frames] input (default 256 x 431) on
the same machine. The JAX steps are compiled once, in this process; then each round runs, for
each mode (train, eval), the PyTorch reference once per memory format and allocator setting (a
fresh subprocess each, warm-up included: glibc as it ships, and with the huge-page tunable asc_jax
sets for itself by default) and immediately after it asc_jax, so both see the same load. The ratio
of a round is asc_jax's clips/s over the fastest PyTorch run of that round; the summary gives the
median, minimum and maximum over rounds.

The asc_jax train step is the real one (compiled by asc_jax.builder: SpecAugment, cross-entropy with
label smoothing, the optax chain, non-finite guard); the reference does forward, cross-entropy,
backward and SGD with momentum and weight decay. Both update BatchNorm statistics and use dropout.

The reference is a separate script, `torch_bcresnet_mod.py`, that is not part of this
repository: pass it as --torch_script, or put its directory on PATH. It must accept --json,
--width, --batch, --mels, --frames, --steps, --warmup, --channels-last and --eval-only and print
one JSON line with 'clips_per_s' last. --torch_python defaults to the first python3 on PATH
that imports torch (a separate venv with `pip install torch==2.13.0 numpy` is what was measured).

  python benchmarks/compare_torch.py --rounds=3 --batch=32 --torch_script=DIR/torch_bcresnet_mod.py
  python benchmarks/compare_torch.py --width=2 --mels=128 --frames=173 --batch=64 ...
  python benchmarks/compare_torch.py --torch_python=/path/to/venv/bin/python --modes=eval
"""

import functools
import json
import os
import shutil
import statistics
import subprocess
import sys

from absl import flags

import harness

TORCH_SCRIPT_NAME = 'torch_bcresnet_mod.py'
_TORCH_PYTHON = flags.DEFINE_string('torch_python', '',
                                    'A Python with torch and numpy; default: the first python3 '
                                    'or python on PATH that imports torch.')
_TORCH_SCRIPT = flags.DEFINE_string(
    'torch_script', '', f'The PyTorch reference script; default: {TORCH_SCRIPT_NAME} found in a '
    'directory on PATH.')
_FORMATS = flags.DEFINE_list('torch_formats', ['channels_last', 'nchw'],
                             'PyTorch memory formats to run each round.')
_MODES = flags.DEFINE_list('modes', ['train', 'eval'], 'train and/or eval.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Alternating rounds.')
_WIDTH = flags.DEFINE_integer('width', 8, 'k of BC-ResNet-Mod-k.')
_BATCH = flags.DEFINE_integer('batch', 32, 'Clips per step (both frameworks).')
_FRAMES = flags.DEFINE_integer('frames', 431, 'Frames per clip.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Timed steps per run (median reported).')
_MELS = flags.DEFINE_integer('mels', 256, 'Mel bins per clip.')
_TORCH_MALLOC = flags.DEFINE_list(
    'torch_malloc', ['shipped', 'asc_jax'],
    'Allocator settings PyTorch runs under each round: shipped (glibc as it ships) and/or asc_jax '
    '(the huge-page tunable asc_jax sets for itself by default, asc_jax/host_memory.py).')
def find_on_path(name: str):
  """The first file `name` in a directory of $PATH, or None."""
  for directory in os.environ.get('PATH', '').split(os.pathsep):
    candidate = os.path.join(directory, name)
    if directory and os.path.isfile(candidate):
      return candidate
  return None


@functools.cache
def torch_script() -> str:
  script = _TORCH_SCRIPT.value or find_on_path(TORCH_SCRIPT_NAME)
  if not script or not os.path.isfile(script):
    sys.exit(f'no PyTorch reference script: pass --torch_script=PATH/{TORCH_SCRIPT_NAME} or put '
             'its directory on PATH (it is not part of this repository).')
  return script


@functools.cache
def torch_python() -> str:
  if _TORCH_PYTHON.value:
    return _TORCH_PYTHON.value
  for name in ('python3', 'python'):
    candidate = shutil.which(name)
    if candidate and subprocess.run([candidate, '-c', 'import torch'],
                                    capture_output=True).returncode == 0:
      return candidate
  sys.exit('no Python with torch on PATH: pass --torch_python=/path/to/venv/bin/python.')


def torch_run(mode: str, memory_format: str, malloc: str) -> dict:
  command = [torch_python(), torch_script(), '--json', f'--width={_WIDTH.value}',
             f'--batch={_BATCH.value}', f'--mels={_MELS.value}', f'--frames={_FRAMES.value}',
             f'--steps={_STEPS.value}', '--warmup=1']
  if memory_format == 'channels_last':
    command.append('--channels-last')
  if mode == 'eval':
    command.append('--eval-only')
  completed = subprocess.run(command, capture_output=True, text=True, check=False,
                             env=harness.torch_environment(malloc))
  if completed.returncode:
    raise RuntimeError(f'{torch_script()} failed (check that {torch_python()} has torch and '
                       f'numpy):\n{completed.stderr[-2000:]}')
  return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  unknown = set(_TORCH_MALLOC.value) - set(harness.MALLOC_SETTINGS)
  if unknown:
    sys.exit(f'--torch_malloc: unknown setting(s) {", ".join(sorted(unknown))}; choose from '
             f'{", ".join(harness.MALLOC_SETTINGS)}.')
  torch_script(), torch_python()   # fail before compiling anything.
  config = harness.experiment_config('mod8', width=float(_WIDTH.value))
  config.features.n_mels = _MELS.value
  runners = {'train': harness.TrainRunner, 'eval': harness.EvalRunner}
  jax_steps = {}
  for mode in _MODES.value:
    jax_steps[mode] = runners[mode](config, _BATCH.value, _FRAMES.value)
    print(f'asc_jax {mode} step compiled and warm: {harness.time_calls(jax_steps[mode], 1)}',
          flush=True)
  torch_columns = [f'torch_{memory_format}_{malloc}' for malloc in _TORCH_MALLOC.value
                   for memory_format in _FORMATS.value]
  rows = []
  for round_index in range(1, _ROUNDS.value + 1):
    for mode in _MODES.value:
      row = dict(round=round_index, mode=mode)
      for malloc in _TORCH_MALLOC.value:
        for memory_format in _FORMATS.value:
          row[f'torch_{memory_format}_{malloc}'] = torch_run(mode, memory_format,
                                                             malloc)['clips_per_s']
      timing = harness.time_calls(jax_steps[mode], _STEPS.value)
      row['asc_jax'] = round(_BATCH.value / timing['median_step_s'], 2)
      row['ratio'] = round(row['asc_jax'] / max(row[column] for column in torch_columns), 2)
      rows.append(row)
      harness.print_table([row], list(row))
  shape = f'{_MELS.value} x {_FRAMES.value}'
  print(f'\nBC-ResNet-Mod-{_WIDTH.value}, batch {_BATCH.value}, {shape}, clips/s (ratio = '
        'asc_jax / the fastest PyTorch format and allocator, same round):')
  harness.print_table(rows, list(rows[0]))
  summary = {}
  for mode in _MODES.value:
    ratios = [row['ratio'] for row in rows if row['mode'] == mode]
    summary[mode] = dict(median=statistics.median(ratios), min=min(ratios), max=max(ratios),
                         rounds=len(ratios))
  print('ratio over rounds: ' + ', '.join(
      f'{mode} median {value["median"]:.2f}x ({value["min"]:.2f}-{value["max"]:.2f}, '
      f'{value["rounds"]} rounds)' for mode, value in summary.items()))
  harness.write_results(
      f'compare_torch_mod{_WIDTH.value}_b{_BATCH.value}_{_MELS.value}x{_FRAMES.value}',
      dict(rounds=rows, ratio=summary, batch=_BATCH.value, mels=_MELS.value, frames=_FRAMES.value,
           torch_malloc=_TORCH_MALLOC.value, torch_script=os.path.basename(torch_script())))


if __name__ == '__main__':
  harness.run(main)
