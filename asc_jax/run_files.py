"""The description files of a run's workdir: the config it was started with and its dataset.

  config.json         the ConfigDict of the run
  dataset_info.json   class names, device names, feature parameters, input shape, split sizes
"""

import json
import os
from typing import Any

import ml_collections

from asc_jax import fileio

CONFIG_FILE = 'config.json'
DATASET_INFO_FILE = 'dataset_info.json'


def dataset_info(dataset: Any) -> dict:
  """What a workdir records of its PreparedDataset (asc_jax.data.datasets)."""
  return {'class_names': list(dataset.class_names), 'device_names': list(dataset.device_names),
          'feature_params': dataset.feature_params, 'input_shape': list(dataset.input_shape),
          'num_examples': dict(dataset.num_examples)}


def write_run_files(workdir: str, config: ml_collections.ConfigDict, info: dict) -> None:
  fileio.atomic_write_text(os.path.join(workdir, CONFIG_FILE), config.to_json_best_effort(indent=2))
  fileio.atomic_write_json(os.path.join(workdir, DATASET_INFO_FILE), info)


def _read_json(workdir: str, name: str) -> Any:
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} is missing: {workdir} is not a trained asc_jax workdir '
                            '(run python -m asc_jax.main --config=... --workdir=... first).')
  with open(path, encoding='utf-8') as file:
    return json.load(file)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(_read_json(workdir, CONFIG_FILE))


def load_dataset_info(workdir: str) -> dict:
  return _read_json(workdir, DATASET_INFO_FILE)
