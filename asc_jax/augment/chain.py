"""Applies the augmentations switched on in `config.augment` to one training batch.

Order: time roll -> Freq-MixStyle -> FilterAugment -> mixup -> SpecAugment. Masks come last so
that their 'mean' fill value is the mean of the input the model sees. Each augmentation draws from
its own key, folded from the batch key with a fixed index, so switching one on or off leaves the
draws of the others unchanged. Only the train step calls this; evaluation never augments.
"""

import jax
import ml_collections

from asc_jax.augment import filter_augment as filter_augment_lib
from asc_jax.augment import freq_mixstyle as freq_mixstyle_lib
from asc_jax.augment import mixup as mixup_lib
from asc_jax.augment import specaugment as specaugment_lib
from asc_jax.augment import time_roll as time_roll_lib

_TIME_ROLL, _FREQ_MIXSTYLE, _MIXUP, _SPECAUGMENT, _FILTER_AUGMENT = range(5)


def augment_batch(key: jax.Array, x: jax.Array, targets: dict[str, jax.Array],
                  augment: ml_collections.ConfigDict) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Augmented log-mels x [B, F, T] and targets (a dict of [B, K] soft targets, mixed alike).

  With every switch off (asc_jax.defaults.augment_section()) it returns x and targets unchanged.
  """
  if augment.time_roll_max_shift > 0:
    x = time_roll_lib.time_roll(jax.random.fold_in(key, _TIME_ROLL), x,
                                augment.time_roll_max_shift)
  if augment.freq_mixstyle_p > 0:
    x = freq_mixstyle_lib.freq_mixstyle(
        jax.random.fold_in(key, _FREQ_MIXSTYLE), x, p=augment.freq_mixstyle_p,
        alpha=augment.freq_mixstyle_alpha, eps=augment.freq_mixstyle_eps)
  if augment.filter_augment_p > 0:
    x = filter_augment_lib.filter_augment(
        jax.random.fold_in(key, _FILTER_AUGMENT), x, p=augment.filter_augment_p,
        db_range=augment.filter_augment_db_range, min_bands=augment.filter_augment_min_bands,
        max_bands=augment.filter_augment_max_bands, kind=augment.filter_augment_type)
  if augment.mixup_alpha > 0:
    x, targets, _, _ = mixup_lib.mixup(jax.random.fold_in(key, _MIXUP), x, targets,
                                       augment.mixup_alpha)
  if augment.specaugment_freq_masks > 0 or augment.specaugment_time_masks > 0:
    x = specaugment_lib.specaugment(
        jax.random.fold_in(key, _SPECAUGMENT), x,
        freq_masks=augment.specaugment_freq_masks,
        freq_mask_width=augment.specaugment_freq_mask_width,
        time_masks=augment.specaugment_time_masks,
        time_mask_width=augment.specaugment_time_mask_width,
        mask_value=augment.specaugment_mask_value)
  return x, targets
