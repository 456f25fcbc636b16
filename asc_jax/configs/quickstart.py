"""Quickstart: BC-ResNet-Mod with ResNorm on the embedded synthetic device-shifted scenes.

Needs no download: the `synthetic_scenes/small` dataset is generated on first use (about a
minute on 2 cores), then a BC-ResNet-Mod-2 trains and is evaluated per device in a few minutes
on a laptop CPU.

Variants by argument: `resnorm` (default) | `noresnorm` | `tiny` (seconds; used by tests).

  python -m asc_jax.main --config=configs/quickstart.py --workdir=/tmp/asc_quickstart
"""

from asc_jax import defaults


def get_config(arg: str = 'resnorm'):
  preset = 'tiny' if arg == 'tiny' else 'small'
  config = defaults.experiment(
      data=defaults.data_section('synthetic_scenes', preset),
      features=defaults.synthetic_features(preset),
      model=defaults.bcresnet_mod_model(2 if preset == 'small' else 1),
      train=defaults.sgd_cosine_train())
  config.train.update(dict(batch_size=64, num_epochs=20, warmup_epochs=1.0, learning_rate=0.05,
                           eval_batch_size=128, eval_every_epochs=5, log_every_steps=20))
  if arg == 'noresnorm':
    config.model.norm = 'none'
  elif arg == 'tiny':
    config.train.update(dict(batch_size=16, num_epochs=2, eval_batch_size=16, log_every_steps=1))
  elif arg != 'resnorm':
    raise ValueError(f'configs/quickstart.py: unknown variant {arg!r}; choose resnorm, noresnorm or tiny.')
  return config
