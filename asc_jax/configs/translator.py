"""Device translator: device-A log-mels -> each seen device, trained on parallel recordings.

Trains asc_jax.models.translator.DeviceTranslator on pairs of recordings of the same segment
(device a -> b, c, s1, s2, s3), holds out a fifth of the segments and reports, per target
device, the translator's error against the identity baseline (report.txt, report.json).
Variants by argument (the front end must match the classifier the translator will serve):

  small (default)   synthetic_scenes/small, as configs/quickstart.py
  tiny              synthetic_scenes/tiny, a few seconds (used by tests)
  tau               TAU Urban Acoustic Scenes 2020 Mobile, as configs/bcresnet.py
  real_audio        the real-audio benchmark, as configs/real_audio.py (its pairs: UrbanSound8K
                    clips of the train split through device a and a seen microphone; give
                    --config.data.manual_dir=DATA/real_audio_benchmark); the small settings

  python -m asc_jax.translate --config=configs/translator.py --workdir=/tmp/asc_translator
  python -m asc_jax.main --config=configs/quickstart.py --workdir=/tmp/asc_translated \
      --config.augment.translation_workdir=/tmp/asc_translator --config.augment.translation_p=0.5
"""

import ml_collections

from asc_jax import defaults
from asc_jax.configs import real_audio


def get_config(arg: str = 'small'):
  if arg in ('small', 'tiny'):
    data = defaults.data_section('synthetic_scenes', arg)
    features = defaults.synthetic_features(arg)
    translator = defaults.translator_section('small')
  elif arg == 'tau':
    data = defaults.data_section('tau_urban_acoustic_scenes_2020_mobile')
    features = defaults.reference_features()
    translator = defaults.translator_section()
  elif arg == 'real_audio':   # the translator :recipe_translation trains for itself
    classifier = real_audio.get_config('recipe_translation')
    data, features, translator = classifier.data, classifier.features, classifier.translator
  else:
    raise ValueError(f'configs/translator.py: unknown variant {arg!r}; choose small, tiny, tau or '
                     'real_audio.')
  config = ml_collections.ConfigDict(dict(seed=0, data=data, features=features,
                                          translator=translator))
  if arg == 'tiny':
    config.translator.update(dict(channels=(8, 8), batch_size=8, num_steps=150,
                                  eval_batch_size=8, learning_rate=3e-3, log_every_steps=10))
  return config
