"""Training and evaluation throughput of BC-ResNet-Mod: clips/s of asc_jax's real steps.

train: forward + backward + the optax update of config.train (weight decay, SGD momentum, the
schedule) + SpecAugment as configured, state donated as in training. eval: logits with BatchNorm
in inference mode. Random 256 x 431 log-mels (10 s at 44.1 kHz); the median step after one warm-up
call is reported, the first call includes compilation. Every combination of the listed modes,
convolution forms and batch sizes is timed.

  python benchmarks/step_throughput.py                       # mod8, train and eval, fast form
  python benchmarks/step_throughput.py --modes=train --conv_impls=fast,lax --batches=32
  python benchmarks/step_throughput.py --dtype=bfloat16 --variant=mod4
"""

from absl import flags

import harness

_VARIANT = flags.DEFINE_string('variant', 'mod8', 'configs/bcresnet.py variant.')
_MODES = flags.DEFINE_list('modes', ['train', 'eval'], 'train and/or eval.')
_BATCHES = flags.DEFINE_list('batches', ['16', '32', '64'], 'Batch sizes to time.')
_FRAMES = flags.DEFINE_integer('frames', 431, 'Frames per clip (431 = 10 s at 44.1 kHz).')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], 'Compute dtype.')
_CONV_IMPLS = flags.DEFINE_list('conv_impls', ['fast'], 'Convolution forms (fast, lax).')
_STEPS = flags.DEFINE_integer('steps', 5, 'Timed steps per combination.')

RUNNERS = {'train': harness.TrainRunner, 'eval': harness.EvalRunner}


def main(argv):
  del argv
  rows = []
  for conv_impl in _CONV_IMPLS.value:
    config = harness.experiment_config(_VARIANT.value, dtype=_DTYPE.value, conv_impl=conv_impl)
    for mode in _MODES.value:
      for batch_size in map(int, _BATCHES.value):
        timing = harness.time_calls(RUNNERS[mode](config, batch_size, _FRAMES.value),
                                    _STEPS.value)
        rows.append(dict(mode=mode, variant=_VARIANT.value, dtype=_DTYPE.value,
                         conv_impl=conv_impl, batch=batch_size,
                         input=f'{config.features.n_mels}x{_FRAMES.value}', **timing,
                         clips_per_s=round(batch_size / timing['median_step_s'], 2)))
        harness.print_table(rows[-1:], list(rows[-1]))
  print()
  harness.print_table(rows, list(rows[0]))
  harness.write_results(f'step_throughput_{_VARIANT.value}_{_DTYPE.value}', rows)


if __name__ == '__main__':
  harness.run(main)
