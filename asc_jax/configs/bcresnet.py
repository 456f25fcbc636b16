"""BC-ResNet-Mod with Residual Normalization on TAU Urban Acoustic Scenes 2020 Mobile.

The paper system (docs/method.md): BC-ResNet-Mod-8 (314,810 parameters), ResNorm lam 0.1,
256 x 431 log-mels, SGD + warm-up + cosine. Variants by argument:

  mod1 | mod4 | mod8 (default)      BC-ResNet-Mod-k, 10 classes
  noresnorm                         BC-ResNet-Mod-8 without ResNorm (ablation)
  rfn                               BC-ResNet-Mod-8 with Relaxed Frequency Normalization
  kws_tau1 ... kws_tau8             the keyword-spotting BC-ResNet-tau (12 classes, 40 mels)

Example:
  python -m asc_jax.main --config=configs/bcresnet.py:mod8 --workdir=/tmp/bcresnet \
      --config.data.manual_dir=/data/TAU-urban-acoustic-scenes-2020-mobile-development
"""

from asc_jax import defaults

KWS_TAUS = {'kws_tau1': 1, 'kws_tau1.5': 1.5, 'kws_tau2': 2, 'kws_tau3': 3, 'kws_tau6': 6,
            'kws_tau8': 8}


def get_config(arg: str = 'mod8'):
  config = defaults.experiment(
      data=defaults.data_section('tau_urban_acoustic_scenes_2020_mobile'),
      features=defaults.reference_features(), model=defaults.bcresnet_mod_model(8),
      train=defaults.sgd_cosine_train())
  # BC-ResNet recipe: SpecAugment with 2 frequency and 2 time masks (widths are not published).
  config.augment.update(dict(specaugment_freq_masks=2, specaugment_freq_mask_width=24,
                             specaugment_time_masks=2, specaugment_time_mask_width=40))
  if arg in ('mod1', 'mod4', 'mod8'):
    config.model.width = float(arg[3:])
  elif arg == 'noresnorm':
    config.model.norm = 'none'
  elif arg == 'rfn':
    config.model.norm = 'rfn'
    config.model.norm_lambda = 0.5
  elif arg in KWS_TAUS:
    config.model.name = 'bcresnet'
    config.model.width = float(KWS_TAUS[arg])
    config.model.num_classes = 12
    config.model.norm = 'none'
    config.model.sub_bands = 5
    config.features.n_mels = 40
  else:
    raise ValueError(f'configs/bcresnet.py: unknown variant {arg!r}; choose one of '
                     f'mod1, mod4, mod8, noresnorm, rfn, {", ".join(KWS_TAUS)}.')
  return config
