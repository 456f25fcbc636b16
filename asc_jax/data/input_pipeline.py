"""The Grain input pipeline: per-process batches of numpy arrays from a random-access source.

A source is anything with `len()` and `__getitem__` (optionally `__getitems__`) returning dicts
with 'logmel' float32 [n_mels, frames], 'label' int and str 'device' (asc_jax.data.datasets).
Batches are dicts of numpy arrays: 'logmel' float32 [B, n_mels, frames], 'label' int32 [B],
'device' int32 [B] (index into `device_names`), 'index' int32 [B] (record index in the source);
evaluation batches add 'mask' bool [B] (False on padding, whose index is -1).

Training: each process reads only its own strided shard of the source (equal shard sizes; the
fewer than `process_count` records left over are skipped), shuffles it with a seed (a new order
every epoch), batches it dropping each epoch's remainder and repeats forever. The iterator is
checkpointable: `get_state`/`set_state`, `grain.checkpoint.CheckpointSave`/`CheckpointRestore`
for Orbax, or `state_to_bytes`/`restore_state` here. Evaluation visits every record exactly once
over all processes and gives every process the same number of batches (the last ones padded and
masked), so collectives inside the evaluation loop line up across hosts.
"""

import json
import math
from typing import Any, Iterator, Sequence

import grain
import numpy as np

READ_OPTIONS = grain.ReadOptions(num_threads=4, prefetch_buffer_size=8)


def _text(value: Any) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


class BatchReader:
  """Reads the records at `indices` (-1 = padding) into one batch of numpy arrays."""

  def __init__(self, source: Any, device_names: Sequence[str], with_mask: bool):
    if len(source) == 0:
      raise ValueError(f'the data source {source!r} is empty: prepare the dataset again or check '
                       'config.data.')
    self._source = source
    self._device_index = {name: i for i, name in enumerate(device_names)}
    self._with_mask = with_mask
    self._logmel_shape = np.shape(source[0]['logmel'])

  def _read(self, indices: list[int]) -> list[dict]:
    if hasattr(self._source, '__getitems__'):
      return list(self._source.__getitems__(indices))
    return [self._source[i] for i in indices]

  def _device(self, record: dict) -> int:
    device = _text(record['device'])
    if device not in self._device_index:
      raise ValueError(f'record {_text(record.get("filename", "?"))!r} has device {device!r}, '
                       f'which is not in device_names {tuple(self._device_index)}; pass the '
                       "dataset's device names (PreparedDataset.device_names).")
    return self._device_index[device]

  def __call__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    indices = np.asarray(indices, dtype=np.int64)
    valid = indices >= 0
    size = len(indices)
    batch = {'logmel': np.zeros((size,) + self._logmel_shape, np.float32),
             'label': np.zeros(size, np.int32), 'device': np.zeros(size, np.int32),
             'index': np.where(valid, indices, -1).astype(np.int32)}
    positions = np.flatnonzero(valid)
    records = self._read([int(i) for i in indices[positions]])
    for position, record in zip(positions, records):
      batch['logmel'][position] = record['logmel']
      batch['label'][position] = int(record['label'])
      batch['device'][position] = self._device(record)
    if self._with_mask:
      batch['mask'] = valid
    return batch


def per_process_batch_size(global_batch_size: int, process_count: int) -> int:
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ValueError(f'the global batch size {global_batch_size} must be a positive multiple of '
                     f'the process count {process_count}: change config.train.batch_size.')
  return global_batch_size // process_count


def _check_process(process_index: int, process_count: int) -> None:
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index={process_index} is outside [0, {process_count}).')


def train_iterator(source: Any, *, global_batch_size: int, seed: int,
                   device_names: Sequence[str], process_index: int = 0,
                   process_count: int = 1) -> grain.DatasetIterator:
  """An endless, checkpointable iterator of this process's shuffled training batches."""
  _check_process(process_index, process_count)
  batch_size = per_process_batch_size(global_batch_size, process_count)
  shard_size = len(source) // process_count
  if shard_size < batch_size:
    raise ValueError(f'each of the {process_count} process(es) holds {shard_size} of the '
                     f'{len(source)} training records, fewer than its batch of {batch_size}: '
                     'lower config.train.batch_size.')
  shard = grain.MapDataset.range(shard_size * process_count)[process_index::process_count]
  dataset = (shard.shuffle(seed=seed)
             .batch(batch_size, drop_remainder=True)
             .repeat(None)
             .map(BatchReader(source, device_names, with_mask=False)))
  return iter(dataset.to_iter_dataset(READ_OPTIONS))


def eval_index_batches(num_records: int, batch_size: int, process_index: int,
                       process_count: int) -> np.ndarray:
  """[num_batches, batch_size] record indices of one process (its strided shard, -1 padded);
  num_batches is the same on every process."""
  _check_process(process_index, process_count)
  if batch_size <= 0:
    raise ValueError(f'the evaluation batch size must be positive, got {batch_size}.')
  num_batches = max(1, math.ceil(math.ceil(num_records / process_count) / batch_size))
  shard = np.arange(process_index, num_records, process_count)
  padded = np.full(num_batches * batch_size, -1, np.int64)
  padded[:len(shard)] = shard
  return padded.reshape(num_batches, batch_size)


def eval_batches(source: Any, *, batch_size: int, device_names: Sequence[str],
                 process_index: int = 0, process_count: int = 1) -> Iterator[dict]:
  """This process's evaluation batches of `batch_size` (per process), with 'mask'."""
  index_batches = eval_index_batches(len(source), batch_size, process_index, process_count)
  dataset = grain.MapDataset.source(list(index_batches)).map(
      BatchReader(source, device_names, with_mask=True))
  return iter(dataset.to_iter_dataset(READ_OPTIONS))


def state_to_bytes(iterator: grain.DatasetIterator) -> bytes:
  """The iterator's position as JSON bytes (what an Orbax JSON item or a file can hold)."""
  return json.dumps(iterator.get_state(), sort_keys=True).encode('utf-8')


def restore_state(iterator: grain.DatasetIterator, state: bytes | str | dict) -> None:
  """Moves `iterator` (built with the same arguments) to a position saved by state_to_bytes."""
  if isinstance(state, (bytes, str)):
    state = json.loads(state)
  iterator.set_state(state)
