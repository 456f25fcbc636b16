"""Parallel recording pairs: the same segment recorded by the source device and by another one.

A pair joins the record of a segment on the source device (device 'a' in TAU and
synthetic_scenes) with the record of the same segment_id on a target device. Pairs are split
into training and held-out sets by segment, so that no held-out segment (on any device) is seen
in training.
"""

import dataclasses
from typing import Any, Sequence

import numpy as np
import tqdm

READ_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class Pair:
  """Record indices (in one source) of a segment on the source device and on `target`."""
  source_index: int
  target_index: int
  target: str
  segment_id: str


@dataclasses.dataclass(frozen=True)
class SourceScan:
  """What one pass over a source tells: its pairs and each source record's log-mel moments."""
  pairs: list[Pair]
  mean_by_index: dict[int, float]
  mean_square_by_index: dict[int, float]


def scan_source(source: Any, source_device: str) -> SourceScan:
  """Reads every record of `source` once; pairs each non-source record with the source device's
  record of the same segment_id (records whose segment has no source recording are skipped)."""
  by_segment: dict[str, dict[str, int]] = {}
  means, mean_squares = {}, {}
  progress = tqdm.tqdm(total=len(source), desc='scan pairs', unit='record')
  for start in range(0, len(source), READ_CHUNK):
    indices = list(range(start, min(start + READ_CHUNK, len(source))))
    for index, record in zip(indices, source.__getitems__(indices)):
      devices = by_segment.setdefault(record['segment_id'], {})
      devices.setdefault(record['device'], index)
      if record['device'] == source_device:
        logmel = np.asarray(record['logmel'], np.float64)
        means[index], mean_squares[index] = logmel.mean(), np.square(logmel).mean()
    progress.update(len(indices))
  progress.close()
  pairs = [Pair(devices[source_device], index, device, segment)
           for segment, devices in sorted(by_segment.items()) if source_device in devices
           for device, index in sorted(devices.items()) if device != source_device]
  if not pairs:
    raise ValueError(f'the source {source!r} holds no segment recorded both by device '
                     f'{source_device!r} and another device: device translation needs parallel '
                     'recordings (same segment_id); check config.translator.source_device.')
  return SourceScan(pairs, means, mean_squares)


def split_by_segment(pairs: Sequence[Pair], holdout_fraction: float, seed: int
                     ) -> tuple[list[Pair], list[Pair]]:
  """(training pairs, held-out pairs), split by segment.

  About `holdout_fraction` of the segments are held out at random; then every target device with
  at least two pairs gets at least one held-out and at least one training pair.
  """
  if not 0.0 < holdout_fraction < 1.0:
    raise ValueError(f'config.translator.holdout_fraction={holdout_fraction} must lie in (0, 1).')
  segments = sorted({pair.segment_id for pair in pairs})
  ranked = [segments[i] for i in np.random.default_rng(seed).permutation(len(segments))]
  held_out = set(ranked[:int(round(holdout_fraction * len(ranked)))])
  for target in sorted({pair.target for pair in pairs}):
    own = {pair.segment_id for pair in pairs if pair.target == target}
    own_ranked = [segment for segment in ranked if segment in own]
    if len(own_ranked) < 2:
      continue
    if not held_out & own:
      held_out.add(own_ranked[0])
    if own <= held_out:
      held_out.discard(own_ranked[-1])
  return ([pair for pair in pairs if pair.segment_id not in held_out],
          [pair for pair in pairs if pair.segment_id in held_out])


def pair_counts(pairs: Sequence[Pair]) -> dict[str, int]:
  counts: dict[str, int] = {}
  for pair in pairs:
    counts[pair.target] = counts.get(pair.target, 0) + 1
  return dict(sorted(counts.items()))


def source_statistics(scan: SourceScan, pairs: Sequence[Pair]) -> tuple[float, float]:
  """(mean, standard deviation) of the source-device log-mels of `pairs` (each record once)."""
  indices = sorted({pair.source_index for pair in pairs})
  mean = float(np.mean([scan.mean_by_index[i] for i in indices]))
  mean_square = float(np.mean([scan.mean_square_by_index[i] for i in indices]))
  return mean, float(np.sqrt(max(mean_square - mean * mean, 1e-12)))


class PairBatchReader:
  """Reads pairs (by position in `pairs`; -1 = padding) into numpy batches: 'source' and
  'target' log-mels [B, F, T] float32, 'device' int32 [B] (target device index), 'mask' [B]."""

  def __init__(self, source: Any, pairs: Sequence[Pair], device_names: Sequence[str]):
    device_index = {name: i for i, name in enumerate(device_names)}
    unknown = sorted({pair.target for pair in pairs} - set(device_index))
    if unknown:
      raise ValueError(f'pair target devices {unknown} are not in the device names '
                       f'{tuple(device_names)}: pass the dataset\'s PreparedDataset.device_names.')
    self._source, self._pairs = source, list(pairs)
    self._device = np.array([device_index[pair.target] for pair in self._pairs], np.int32)
    self._shape = np.shape(source[self._pairs[0].source_index]['logmel'])

  def __call__(self, positions: np.ndarray) -> dict[str, np.ndarray]:
    positions = np.asarray(positions, np.int64)
    valid = positions >= 0
    chosen = [self._pairs[i] for i in positions[valid]]
    records = list(self._source.__getitems__([pair.source_index for pair in chosen] +
                                             [pair.target_index for pair in chosen]))
    batch = {'source': np.zeros((len(positions),) + self._shape, np.float32),
             'target': np.zeros((len(positions),) + self._shape, np.float32),
             'device': np.where(valid, self._device[np.maximum(positions, 0)], 0).astype(np.int32),
             'mask': valid}
    where = np.flatnonzero(valid)
    for row, source_record, target_record in zip(where, records[:len(chosen)],
                                                 records[len(chosen):]):
      batch['source'][row] = source_record['logmel']
      batch['target'][row] = target_record['logmel']
    return batch
