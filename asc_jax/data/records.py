"""Reading helpers over random-access record sources (len, [index], __getitems__): the values of
named fields of every record, and a view of a subset of the records."""

from typing import Any, Sequence

import numpy as np

CHUNK = 256


def record_fields(source: Any, *names: str, chunk: int = CHUNK) -> list:
  """(record[name] for name in names) of every record of `source`, in record order."""
  values = []
  for start in range(0, len(source), chunk):
    indices = list(range(start, min(start + chunk, len(source))))
    values.extend(tuple(record[name] for name in names) for record in source.__getitems__(indices))
  return values


class SubsetSource:
  """The records `indices` of a random-access source, as a random-access source."""

  def __init__(self, source: Any, indices: Sequence[int]):
    self._source = source
    self._indices = np.asarray(indices, dtype=np.int64)

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index: int) -> dict:
    return self._source[int(self._indices[index])]

  def __getitems__(self, indices) -> list:
    return self._source.__getitems__([int(self._indices[index]) for index in indices])

  def __repr__(self) -> str:
    return f'SubsetSource({self._source!r}, {len(self)} of {len(self._source)} records)'
