"""Log-mel clips of the dataset a compressed run was trained on (its config.json's data section):
training clips calibrate the int8 ranges of the deployable graph, test clips measure agreement."""

import json
import os
from typing import Optional

import ml_collections
import numpy as np

from asc_jax.data import datasets

CONFIG_FILE = 'config.json'


def run_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} is missing: give --workdir=the compressed run (the directory '
                            'python -m asc_jax.compress wrote, holding config.json and export/).')
  with open(path, encoding='utf-8') as file:
    return ml_collections.ConfigDict(json.load(file))


def load_split(dataset: datasets.PreparedDataset, split: str, limit: Optional[int] = None,
               chunk: int = 256) -> dict[str, np.ndarray]:
  """{'logmel' [N, F, T] float32, 'label' [N] int, 'filename' [N]} of the first `limit` records."""
  source = dataset.sources[split]
  count = len(source) if not limit else min(limit, len(source))
  logmels, labels, names = [], [], []
  for start in range(0, count, chunk):
    for record in source.__getitems__(list(range(start, min(start + chunk, count)))):
      record = datasets.decode_record(record)
      logmels.append(np.asarray(record['logmel'], np.float32))
      labels.append(record['label'])
      names.append(record['filename'])
  return dict(logmel=np.stack(logmels), label=np.asarray(labels), filename=np.asarray(names))
