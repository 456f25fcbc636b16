"""configs/real_audio.py: the recipe variants differ from one another only where their docstring
says, so a published comparison between two of them measures that one change."""

import pytest

from asc_jax.configs import real_audio


def differences(left, right):
  flat_left, flat_right = flatten(left.to_dict()), flatten(right.to_dict())
  return {key: (flat_left.get(key), flat_right.get(key))
          for key in set(flat_left) | set(flat_right) if flat_left.get(key) != flat_right.get(key)}


def flatten(tree, prefix=''):
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def test_the_adopted_recipe_is_the_earlier_one_with_freq_mixstyle_p_0_8():
  assert differences(real_audio.get_config('recipe_fms08'), real_audio.get_config('recipe')) == {
      'augment.freq_mixstyle_p': (0.8, 0.4)}


def test_the_recipe_trains_as_long_as_the_reference_it_is_judged_against():
  recipe, plain_50 = real_audio.get_config('recipe_fms08'), real_audio.get_config('plain_50')
  changed = differences(recipe, plain_50)
  assert set(changed) == {'augment.mixup_alpha', 'augment.time_roll_max_shift',
                          'augment.freq_mixstyle_p'}
  assert recipe.train.num_epochs == plain_50.train.num_epochs == 50


def test_an_unknown_variant_names_the_known_ones():
  with pytest.raises(ValueError, match='recipe_fms08'):
    real_audio.get_config('recipe_fms')
