"""A split's records held in memory, so that training reads copy log-mels instead of parsing them.

The prepared TFDS files are parsed again on every read: about 0.2 ms of one core per 128 x 173
log-mel on the project's 2-core machines, taken from the train step, which on a small network
needs both cores. `in_memory(source, budget_mb)` reads every record once into one float32 array
[records, n_mels, frames] (and the other fields into a list) when the log-mels fit in budget_mb,
and otherwise returns the source itself. Records come out equal to the source's, in its order.
"""

from typing import Any

import numpy as np

from asc_jax.data import records


class InMemorySource:
  """Random-access records (len, [index], __getitems__) served from memory."""

  def __init__(self, logmels: np.ndarray, fields: list[dict]):
    self._logmels, self._fields = logmels, fields

  def __len__(self) -> int:
    return len(self._fields)

  def __getitem__(self, index: int) -> dict:
    return dict(self._fields[index], logmel=self._logmels[index])

  def __getitems__(self, indices) -> list:
    return [self[int(index)] for index in indices]

  def __repr__(self) -> str:
    return f'InMemorySource({len(self)} records, log-mels {self._logmels.shape[1:]})'


def logmel_megabytes(source: Any) -> float:
  """Size of every float32 log-mel of `source` in MiB."""
  return _megabytes(len(source), np.shape(source[0]['logmel'])) if len(source) else 0.0


def _megabytes(records: int, shape: tuple) -> float:
  return records * int(np.prod(shape)) * 4 / 2**20


def in_memory(source: Any, budget_mb: float) -> Any:
  """`source` read into an InMemorySource when its log-mels fit in `budget_mb` MiB (> 0)."""
  if budget_mb <= 0 or len(source) == 0:
    return source
  shape = np.shape(source[0]['logmel'])
  if _megabytes(len(source), shape) > budget_mb:
    return source
  logmels = np.empty((len(source),) + shape, np.float32)
  fields = []
  for start in range(0, len(source), records.CHUNK):
    indices = list(range(start, min(start + records.CHUNK, len(source))))
    for index, record in zip(indices, source.__getitems__(indices)):
      logmels[index] = record['logmel']
      fields.append({name: value for name, value in record.items() if name != 'logmel'})
  logmels.flags.writeable = False     # records hand out views: nobody may change the cache.
  return InMemorySource(logmels, fields)
