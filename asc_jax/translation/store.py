"""A trained translator's workdir: writing it and loading it back.

Workdir layout:
  config.json       the ConfigDict the translator was trained with
  params/           Orbax checkpoint of the translator's parameters
  translator.json   network hyperparameters, device names, source and target devices, input
                    shape, dataset name and front end; written after params/, so its presence
                    marks a loadable translator
  report.json       per-device error of the translator and of the identity on held-out pairs
  report.txt        the same as a table
"""

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from asc_jax import fileio
from asc_jax.models import translator as translator_lib

CONFIG_FILE = 'config.json'
PARAMS_DIR = 'params'
TRANSLATOR_FILE = 'translator.json'
REPORT_JSON = 'report.json'
REPORT_TEXT = 'report.txt'
MODEL_FIELDS = ('num_devices', 'num_mels', 'channels', 'embed_dim', 'offset', 'scale')


@dataclasses.dataclass(frozen=True)
class TrainedTranslator:
  """A translator with its parameters (numpy) and what its device indices mean."""
  model: translator_lib.DeviceTranslator
  params: Any
  device_names: tuple[str, ...]
  source_device: str
  target_devices: tuple[str, ...]
  input_shape: tuple[int, int]
  data_name: str
  feature_params: dict

  def apply(self, x: jax.Array, device: jax.Array) -> jax.Array:
    """Translations of source-device log-mels x [B, F, T] to target devices `device` [B]."""
    return self.model.apply({'params': self.params}, x, device)


def model_spec(model: translator_lib.DeviceTranslator) -> dict:
  spec = {field: getattr(model, field) for field in MODEL_FIELDS}
  spec['channels'] = list(spec['channels'])
  return spec


def abstract_params(model: translator_lib.DeviceTranslator, input_shape: tuple[int, int]) -> Any:
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *input_shape)),
                                           jnp.zeros((1,), jnp.int32))['params'])


def save(workdir: str, translator: TrainedTranslator, config: ml_collections.ConfigDict) -> None:
  """Writes config.json, params/ and (last) translator.json into `workdir`."""
  os.makedirs(workdir, exist_ok=True)
  fileio.atomic_write_text(os.path.join(workdir, CONFIG_FILE), config.to_json_best_effort(indent=2))
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.abspath(os.path.join(workdir, PARAMS_DIR)), translator.params,
                    force=True)
  checkpointer.wait_until_finished()
  fileio.atomic_write_json(os.path.join(workdir, TRANSLATOR_FILE), {
      'model': model_spec(translator.model), 'device_names': list(translator.device_names),
      'source_device': translator.source_device,
      'target_devices': list(translator.target_devices),
      'input_shape': list(translator.input_shape), 'data_name': translator.data_name,
      'feature_params': translator.feature_params})


def load(workdir: str) -> TrainedTranslator:
  """The translator stored in `workdir` by `save`, parameters on the host as numpy."""
  path = os.path.join(workdir, TRANSLATOR_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f'{path} is missing: {workdir} holds no finished translator. Train one with '
        f'python -m asc_jax.translate --config=configs/translator.py --workdir={workdir}')
  with open(path, encoding='utf-8') as file:
    spec = json.load(file)
  model_fields = dict(spec['model'], channels=tuple(spec['model']['channels']))
  model = translator_lib.DeviceTranslator(**model_fields)
  input_shape = tuple(spec['input_shape'])
  on_host = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=on_host),
                        abstract_params(model, input_shape))
  params = ocp.StandardCheckpointer().restore(
      os.path.abspath(os.path.join(workdir, PARAMS_DIR)), target)
  return TrainedTranslator(
      model=model, params=jax.tree.map(np.asarray, jax.device_get(params)),
      device_names=tuple(spec['device_names']), source_device=spec['source_device'],
      target_devices=tuple(spec['target_devices']), input_shape=input_shape,
      data_name=spec['data_name'], feature_params=dict(spec['feature_params']))
