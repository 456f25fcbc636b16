"""Peak memory (RSS) of a short training run: asc_jax's real train step, one process per batch.

Each batch size runs in a fresh subprocess (compile, then `--steps` train steps of
BC-ResNet-Mod on random 256 x 431 log-mels); its peak resident set size is read back from the
kernel (getrusage in the child, at its end), so it covers compilation, parameters, optimizer state,
activations kept for the backward pass and XLA's buffers.

  python benchmarks/memory.py --batches=16,32,64
"""

import json
import resource
import subprocess
import sys

from absl import flags

import harness

_VARIANT = flags.DEFINE_string('variant', 'mod8', 'configs/bcresnet.py variant.')
_BATCHES = flags.DEFINE_list('batches', ['16', '32', '64'], 'Batch sizes, one process each.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], 'Compute dtype.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Train steps per run.')
_CHILD_BATCH = flags.DEFINE_integer('child_batch', 0, 'Internal: run the steps in this process.')

FRAMES = 431


def run_steps(batch_size: int) -> None:
  config = harness.experiment_config(_VARIANT.value, dtype=_DTYPE.value)
  runner = harness.TrainRunner(config, batch_size, FRAMES)
  for _ in range(_STEPS.value):
    runner()
  print(json.dumps(dict(peak_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))


def peak_rss_mib(batch_size: int) -> float:
  """Peak RSS of a fresh process that compiles and runs the steps at `batch_size`."""
  completed = subprocess.run([sys.executable, __file__, f'--child_batch={batch_size}',
                              f'--variant={_VARIANT.value}', f'--dtype={_DTYPE.value}',
                              f'--steps={_STEPS.value}'], capture_output=True, text=True,
                             check=False)
  if completed.returncode:
    raise RuntimeError(f'the batch {batch_size} run failed:\n{completed.stderr[-2000:]}')
  return json.loads(completed.stdout.strip().splitlines()[-1])['peak_rss_kib'] / 1024


def main(argv):
  del argv
  if _CHILD_BATCH.value:
    run_steps(_CHILD_BATCH.value)
    return
  rows = []
  for batch_size in sorted(map(int, _BATCHES.value)):
    rows.append(dict(variant=_VARIANT.value, dtype=_DTYPE.value, batch=batch_size,
                     input=f'256x{FRAMES}', steps=_STEPS.value,
                     peak_rss_mib=round(peak_rss_mib(batch_size))))
    harness.print_table(rows[-1:], list(rows[-1]))
  harness.print_table(rows, list(rows[0]))
  harness.write_results(f'memory_{_VARIANT.value}_{_DTYPE.value}', rows)


if __name__ == '__main__':
  harness.run(main)
