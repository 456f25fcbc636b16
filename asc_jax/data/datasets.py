"""The one entry point the trainer calls: `prepare(config)` builds the dataset if needed and
returns its random-access sources ('train', 'test') and everything known about it.

Records come out as dicts: 'logmel' float32 [n_mels, frames], 'label' int, and Python str for
'device', 'city', 'identifier', 'segment_id', 'filename'.
"""

import dataclasses
from typing import Any, Mapping

import ml_collections

from asc_jax.data import audio_folder
from asc_jax.data import builder_base
from asc_jax.data import cross_fit
from asc_jax.data import memory
from asc_jax.data import synthetic_scenes
from asc_jax.data import tau2020

BUILDERS = {builder.name: builder for builder in (
    synthetic_scenes.SyntheticScenes, tau2020.TauUrbanAcousticScenes2020Mobile,
    audio_folder.AudioFolder)}


@dataclasses.dataclass(frozen=True)
class PreparedDataset:
  """A prepared dataset: sources by split plus its names, front end and sizes.

  sources: {'train', 'test'} -> random-access source (len, [index], __getitems__) of records.
  class_names: label names in label-index order. device_names: every device the dataset can
  hold, in a stable order. feature_params: the resolved front end it was built with.
  num_examples: examples per split. device_counts: {split: {device: examples}}.
  input_shape: (n_mels, frames). prepared_dir: the TFDS directory the sources read.
  device_groups: config.data.device_groups, the reporting groups as written there
  ('name=dev,dev;...'; '' = DCASE's; asc_jax.evaluate.parse_device_groups reads it).
  """
  sources: Mapping[str, Any]
  class_names: tuple
  device_names: tuple
  feature_params: dict
  num_examples: dict
  device_counts: dict
  input_shape: tuple
  prepared_dir: str
  device_groups: str = ''


def decode_record(record: Mapping[str, Any]) -> dict:
  """Text fields as str and the label as int; the log-mel array is passed through."""
  decoded = dict(record)
  for name in builder_base.TEXT_FIELDS:
    value = decoded[name]
    decoded[name] = value.decode('utf-8') if isinstance(value, bytes) else str(value)
  decoded['label'] = int(decoded['label'])
  return decoded


class DecodedSource:
  """A random-access source whose records pass through `decode_record` (Grain-compatible)."""

  def __init__(self, source):
    self._source = source

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict:
    return decode_record(self._source[index])

  def __getitems__(self, indices) -> list:
    return [decode_record(record) for record in self._source.__getitems__(indices)]

  def __repr__(self) -> str:
    return f'DecodedSource({self._source!r})'


def builder_class(name: str) -> type:
  if name not in BUILDERS:
    raise ValueError(f'config.data.name={name!r} is not a known dataset; choose one of '
                     f'{sorted(BUILDERS)}.')
  return BUILDERS[name]


def prepare(config: ml_collections.ConfigDict) -> PreparedDataset:
  """Builds the dataset config.data names with config.features (unless built), then reads it;
  with config.data.cross_fit 'k/K', its train split lacks fold k (cross_fit.hold_out_fold). The
  train split is read into memory when its log-mels fit in config.data.train_in_memory_mb."""
  builder = builder_class(config.data.name)
  path = builder_base.prepared_path(builder, config.data.data_dir, builder.config_from(config).name)
  if not builder_base.is_prepared(path):
    builder.from_config(config).build()
  sources, info = builder_base.read_prepared(path)
  params = dict(info.metadata['feature_params'])
  dataset = PreparedDataset(
      sources={split: DecodedSource(source) for split, source in sources.items()},
      class_names=tuple(info.features['label'].names),
      device_names=tuple(info.metadata['device_names']),
      feature_params=params,
      num_examples={split: info.splits[split].num_examples for split in sources},
      device_counts={split: dict(counts)
                     for split, counts in info.metadata['device_counts'].items()},
      input_shape=tuple(info.features['logmel'].shape),
      prepared_dir=path,
      device_groups=config.data.get('device_groups', ''))
  if config.data.get('cross_fit', ''):
    dataset = cross_fit.hold_out_fold(dataset, config.data.cross_fit,
                                      config.data.get('cross_fit_seed', 0))
  train = memory.in_memory(dataset.sources['train'], config.data.get('train_in_memory_mb', 0))
  return dataclasses.replace(dataset, sources={**dataset.sources, 'train': train})
