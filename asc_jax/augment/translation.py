"""Device translation as a training augmentation, inside the jitted train step.

With probability p, each example recorded by the translator's source device (device 'a') is
replaced by its translation to a target device drawn uniformly from the devices the translator
was trained for (asc_jax.translation; the paper's third part). Other examples, labels and the
evaluation path are untouched. The translator is read from disk once, where the run is set up
(`load_device_translation`); its parameters are numpy arrays closed over by the step, so jit
embeds them as constants, replicated on every device of the mesh.
"""

import functools
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from asc_jax.translation import store

def translate_source_examples(key: jax.Array, x: jax.Array, device: jax.Array, *, p: float,
                              translate: Callable[[jax.Array, jax.Array], jax.Array],
                              source_device: int, target_devices: Sequence[int]
                              ) -> tuple[jax.Array, jax.Array]:
  """(x with translated examples, replaced [B] bool) for log-mels x [B, F, T].

  Args:
    key: PRNG key; the same key gives the same choices.
    x: log-mels [B, F, T].
    device: [B] device index of each example (into the dataset's device names).
    p: probability that a source-device example is replaced.
    translate: (x [B, F, T], target device [B]) -> translated x [B, F, T].
    source_device: index of the source device.
    target_devices: device indices the translation target is drawn from, uniformly.
  """
  choose_key, target_key = jax.random.split(key)
  batch = x.shape[0]
  choices = jnp.array(target_devices, jnp.int32)
  targets = choices[jax.random.randint(target_key, (batch,), 0, len(target_devices))]
  replaced = (device == source_device) & (jax.random.uniform(choose_key, (batch,)) < p)
  translated = jax.lax.stop_gradient(translate(x, targets)).astype(x.dtype)
  return jnp.where(replaced[:, None, None], translated, x), replaced


def check_data_compatible(translator: store.TrainedTranslator, data: ml_collections.ConfigDict,
                          workdir: str) -> None:
  if translator.data_name != data.name:
    raise ValueError(f'the translator in config.augment.translation_workdir={workdir!r} was '
                     f'trained on {translator.data_name!r}, but config.data.name={data.name!r}: '
                     'device indices would not match; train a translator on this dataset.')


def load_device_translation(config: ml_collections.ConfigDict
                            ) -> Optional[Callable[[jax.Array, jax.Array, jax.Array], jax.Array]]:
  """(key, x, device) -> x with source-device examples translated, or None when
  config.augment.translation_p is 0. Reads the translator from config.augment's workdir."""
  augment = config.augment
  probability = augment.get('translation_p', 0.0)   # configs saved before translation lack it.
  if probability <= 0:
    return None
  if not augment.translation_workdir:
    raise ValueError('config.augment.translation_p > 0 needs config.augment.translation_workdir: '
                     'train a translator with python -m asc_jax.translate '
                     '--config=configs/translator.py --workdir=DIR and pass that DIR.')
  translator = store.load(augment.translation_workdir)
  check_data_compatible(translator, config.data, augment.translation_workdir)
  index = {name: i for i, name in enumerate(translator.device_names)}
  translate = functools.partial(
      translate_source_examples, p=float(probability), translate=translator.apply,
      source_device=index[translator.source_device],
      target_devices=tuple(index[name] for name in translator.target_devices))
  return lambda key, x, device: translate(key, x, device)[0]
