"""Cross-fitting folds of a train split, for out-of-fold teachers.

`config.data.cross_fit='k/K'` trains on every recording group (the `identifier` field: a TAU
location, an audio_folder `group`, else the segment) except those of fold k of K. The folds deal
the sorted groups, permuted by numpy.random.default_rng(config.data.cross_fit_seed), round robin,
so K runs with k = 0..K-1 hold out every training group exactly once. The teacher-logit export
(asc_jax.compress.teacher) then gives each training record the logits of the teachers that never
saw it. Validation and test are untouched.
"""

import collections
import dataclasses
from typing import Sequence

import numpy as np

from asc_jax.data import records


def parse(spec: str) -> tuple:
  """(k, K) from 'k/K'; raises ValueError naming config.data.cross_fit when it is malformed."""
  try:
    fold, folds = (int(part) for part in str(spec).split('/'))
  except ValueError:
    fold = folds = -1
  if folds < 2 or not 0 <= fold < folds:
    raise ValueError(f'config.data.cross_fit={spec!r}: write k/K with K >= 2 and 0 <= k < K '
                     '(train on every group but fold k of K), or leave it empty.')
  return fold, folds


def group_folds(groups: Sequence[str], folds: int, seed: int) -> np.ndarray:
  """int [len(groups)]: the fold (0..folds-1) of each entry's group."""
  unique = sorted(set(groups))
  order = np.random.default_rng(seed).permutation(len(unique))
  fold_of = {unique[index]: position % folds for position, index in enumerate(order)}
  return np.asarray([fold_of[group] for group in groups], dtype=np.int64)


def hold_out_fold(dataset, spec: str, seed: int):
  """`dataset` (a datasets.PreparedDataset) whose train split lacks fold k of K (spec 'k/K')."""
  fold, folds = parse(spec)
  source = dataset.sources['train']
  groups, devices = zip(*records.record_fields(source, 'identifier', 'device'))
  if len(set(groups)) < folds:
    raise ValueError(f'config.data.cross_fit={spec!r}: the train split has only '
                     f'{len(set(groups))} recording groups, fewer than {folds} folds.')
  kept = np.flatnonzero(group_folds(groups, folds, seed) != fold)
  subset = records.SubsetSource(source, kept)
  kept_devices = collections.Counter(devices[index] for index in kept)
  counts = {device: kept_devices[device] for device in sorted(kept_devices)}
  return dataclasses.replace(
      dataset, sources={**dataset.sources, 'train': subset},
      num_examples={**dataset.num_examples, 'train': len(subset)},
      device_counts={**dataset.device_counts, 'train': counts})
