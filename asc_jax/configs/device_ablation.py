"""Device-robustness ablation on synthetic_scenes/small (issue 6, item 3): what Residual
Normalization, device translation and Freq-MixStyle each add to a plain BC-ResNet-Mod-2.

Variants by argument, all on configs/quickstart.py's data, model and schedule:
  baseline       no ResNorm, no augmentation
  resnorm        + ResNorm (lam 0.1)
  translation    + device translation (p = TRANSLATION_P; needs a trained translator)
  freqmixstyle   + Freq-MixStyle (p 0.4, alpha 0.3, the CP-JKU 2023 values)
  all            everything above

  python -m asc_jax.translate --config=configs/translator.py --workdir=/tmp/asc_translator
  for variant in baseline resnorm translation freqmixstyle all; do
    python -m asc_jax.ablate --config=configs/device_ablation.py:$variant --seeds=2 \
        --workdir=/tmp/asc_device_ablation/$variant \
        --config.augment.translation_workdir=/tmp/asc_translator
  done

Each workdir then holds ablation.md (accuracy per device group, mean +- std over seeds).
"""

from asc_jax.configs import quickstart

VARIANTS = ('baseline', 'resnorm', 'translation', 'freqmixstyle', 'all')
TRANSLATION_P = 0.5   # not published for the paper; half of the device-a examples per step.



def get_config(arg: str = 'baseline'):
  if arg not in VARIANTS:
    raise ValueError(f'configs/device_ablation.py: unknown variant {arg!r}; choose one of '
                     f'{", ".join(VARIANTS)}.')
  config = quickstart.get_config('resnorm' if arg in ('resnorm', 'all') else 'noresnorm')
  if arg in ('translation', 'all'):
    config.augment.translation_p = TRANSLATION_P
  if arg in ('freqmixstyle', 'all'):
    config.augment.update(dict(freq_mixstyle_p=0.4, freq_mixstyle_alpha=0.3))
  return config
