"""TFDS builder for `synthetic_scenes`, the embedded default dataset (no download).

The audio comes from asc_jax.data.synthetic_audio (deterministic from each preset's seed):
10 TAU scene classes recorded by 9 simulated devices, with parallel recordings sharing a
segment id. Builder configs are named `<preset>_mel<n_mels>x<frames>_<hash>` for presets
tiny | small | tau_shaped; clips are rendered and turned into log-mels in worker processes,
resampled when the front end's rate differs from the preset's.
"""

import functools
from typing import Mapping

import ml_collections
import numpy as np

from asc_jax import features as features_lib
from asc_jax.data import builder_base
from asc_jax.data import catalog
from asc_jax.data import synthetic_audio


def render_logmel(spec, preset: str, feature_params: Mapping) -> np.ndarray:
  """Renders one clip of `preset` and returns its log-mel under `feature_params`."""
  waveform = synthetic_audio.render_clip(spec, preset)
  waveform = features_lib.to_rate(np.asarray(waveform, np.float32),
                                  int(synthetic_audio.PRESETS[preset].sample_rate),
                                  feature_params['sample_rate'])
  waveform = features_lib.fit_length(waveform, features_lib.num_samples(feature_params))
  return features_lib.logmel(waveform, feature_params)


def check_preset(preset: str) -> str:
  if preset not in synthetic_audio.PRESETS:
    raise ValueError(f'config.data.builder_config={preset!r} is not a synthetic_scenes preset; '
                     f'choose one of {sorted(synthetic_audio.PRESETS)}.')
  return preset


def clip_of_spec(spec) -> catalog.Clip:
  return catalog.Clip(source=spec, label=spec.scene, device=spec.device, city=spec.city,
                      identifier=spec.identifier, segment_id=spec.segment_id,
                      filename=spec.filename)


class SyntheticScenes(builder_base.LogmelBuilder):
  """Synthetic device-shifted acoustic scenes, generated deterministically from a preset."""

  name = 'synthetic_scenes'

  @property
  def preset(self) -> str:
    return self.builder_config.options['preset']

  def class_names(self) -> tuple:
    return tuple(synthetic_audio.SCENES)

  def device_names(self) -> tuple:
    return tuple(synthetic_audio.DEVICES)

  def read_clips(self) -> dict:
    return {split: [clip_of_spec(spec) for spec in synthetic_audio.clip_specs(self.preset, split)]
            for split in synthetic_audio.SPLITS}

  def extractor(self):
    return functools.partial(render_logmel, preset=self.preset,
                             feature_params=dict(self.builder_config.feature_params))

  @classmethod
  def config_from(cls, config: ml_collections.ConfigDict) -> builder_base.LogmelConfig:
    preset = check_preset(config.data.builder_config)
    params = features_lib.feature_params(config.features)
    options = {'preset': preset, 'generator_version': synthetic_audio.GENERATOR_VERSION}
    return builder_base.LogmelConfig(
        name=builder_base.config_name(f'{preset}_', params, options),
        feature_params=params, options=options,
        description=f'Synthetic scenes, preset {preset}.')

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'SyntheticScenes':
    return cls(config=cls.config_from(config), data_dir=config.data.data_dir,
               num_workers=config.data.num_workers)
