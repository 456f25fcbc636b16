"""TFDS builder for any directory of audio files described by one CSV (ESC-50 / UrbanSound8K style).

config.data.manual_dir is the audio root; config.data.csv (relative to it, or absolute) is a
comma- or TAB-separated file with a header and the columns `filename` (relative to the root),
`label`, optional `device`, optional `split` (train | validation | test; `val` and `valid`
mean validation) or `fold`, optional `group` (clips that must stay on one side of the
train/validation line, e.g. one source recording) and optional `segment` (clips that are the
same sound recorded by different devices: stored as the segment id that device translation
pairs on). With config.data.train_folds / test_folds set (comma-separated fold values), train
and test come from the fold column (validation from config.data.validation_folds) and rows in
other folds are left out; otherwise from the split column.

Validation: the rows the CSV (or validation_folds) names; when there are none and
config.data.validation_fraction > 0, a seeded hold-out of the training rows
(catalog.split_off_validation: whole groups, the `group` column, else `segment`, else each
file on its own; stratified by the device most of a group's clips have; seed
config.data.validation_seed). It is never taken from test.
Class names are the sorted labels of every row; device names the sorted devices ('unknown'
when there is no device column).
"""

import dataclasses
import os
from typing import Optional

import ml_collections

from asc_jax import features as features_lib
from asc_jax.data import builder_base
from asc_jax.data import catalog

UNKNOWN_DEVICE = 'unknown'
SPLIT_VALUES = ('train', 'validation', 'test')
SPLIT_ALIASES = {'val': 'validation', 'valid': 'validation'}


@dataclasses.dataclass(frozen=True)
class FolderCatalog:
  clips: dict
  class_names: tuple
  device_names: tuple


def parse_folds(text: str) -> frozenset:
  return frozenset(fold.strip() for fold in str(text).split(',') if fold.strip())


def split_of_row(row: catalog.CsvRow, train_folds: frozenset, test_folds: frozenset,
                 problems: catalog.ProblemLog, validation_folds: frozenset = frozenset()
                 ) -> Optional[str]:
  """'train', 'validation', 'test', or None: a fold in no set, or a bad split value (logged)."""
  if train_folds:
    fold = row.fields['fold']
    if fold in validation_folds:
      return 'validation'
    return 'train' if fold in train_folds else 'test' if fold in test_folds else None
  split = row.fields['split'].lower()
  split = SPLIT_ALIASES.get(split, split)
  if split not in SPLIT_VALUES:
    problems.add_row('malformed row', row,
                     f'split {row.fields["split"]!r} is not one of {list(SPLIT_VALUES)}')
    return None
  return split


def csv_location(manual_dir: str, csv_name: str) -> str:
  if not manual_dir or not os.path.isdir(os.path.expanduser(manual_dir)):
    raise FileNotFoundError(f'config.data.manual_dir={manual_dir!r} is not a directory: set '
                            '--config.data.manual_dir=PATH to the folder that holds the audio.')
  if not csv_name:
    raise FileNotFoundError('config.data.csv is not set: set --config.data.csv=FILE to the CSV '
                            '(filename, label[, device][, split | fold]) describing the audio.')
  path = os.path.join(os.path.abspath(os.path.expanduser(manual_dir)), csv_name)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} (config.data.csv) does not exist: point --config.data.csv '
                            'at the metadata CSV, relative to config.data.manual_dir or absolute.')
  return path


def group_of(clip: catalog.Clip) -> str:
  return clip.identifier


def device_of(clip: catalog.Clip) -> str:
  return clip.device


def read_folder_catalog(manual_dir: str, csv_name: str, train_folds: str, test_folds: str,
                        validation_folds: str = '', validation_fraction: float = 0.0,
                        validation_seed: int = 0) -> FolderCatalog:
  """Clips per split plus class and device names; raises one error listing all problems."""
  csv_path = csv_location(manual_dir, csv_name)
  root = os.path.abspath(os.path.expanduser(manual_dir))
  train_set, test_set = parse_folds(train_folds), parse_folds(test_folds)
  validation_set = parse_folds(validation_folds)
  if bool(train_set) != bool(test_set) or train_set & test_set:
    raise ValueError(f'config.data.train_folds={train_folds!r} and test_folds={test_folds!r}: '
                     'set both (or neither, to use a split column) and keep them disjoint.')
  if validation_set and (not train_set or validation_set & (train_set | test_set)):
    raise ValueError(f'config.data.validation_folds={validation_folds!r} needs train_folds and '
                     'test_folds set too, and must share no fold with them.')
  problems = catalog.ProblemLog(f'audio folder {root} (CSV {csv_path})')
  split_column = 'fold' if train_set else 'split'
  rows = catalog.flag_duplicates(
      list(catalog.read_csv(csv_path, required=('filename', 'label', split_column),
                            optional=('device', 'group', 'segment'), problems=problems)),
      'filename', problems)
  class_names = tuple(sorted({row.fields['label'] for row in rows}))
  device_names = tuple(sorted({row.fields.get('device') or UNKNOWN_DEVICE for row in rows}))
  clips = {split: [] for split in SPLIT_VALUES}
  for row in rows:
    split = split_of_row(row, train_set, test_set, problems, validation_set)
    path = catalog.check_audio(root, row, problems) if split else None
    if path is None:
      continue
    filename = row.fields['filename']
    segment = row.fields.get('segment') or os.path.splitext(filename)[0]
    clips[split].append(catalog.Clip(
        source=path, label=row.fields['label'],
        device=row.fields.get('device') or UNKNOWN_DEVICE, city='',
        identifier=row.fields.get('group') or segment, segment_id=segment, filename=filename))
  if not clips['validation'] and validation_fraction > 0:
    clips['train'], clips['validation'] = catalog.split_off_validation(
        clips['train'], group_of, device_of, validation_fraction, validation_seed)
  if not clips['validation']:
    del clips['validation']
  for split, split_clips in clips.items():
    if not split_clips and not problems.problems:
      problems.add('empty split', csv_path, 0, f'no row falls into the {split} split')
  problems.raise_if_any()
  check_disjoint_groups(clips, csv_path)
  return FolderCatalog(clips, class_names, device_names)


def check_disjoint_groups(clips: dict, csv_path: str) -> None:
  """Raises if a group (the `group` column) has clips in both train and validation."""
  if 'validation' not in clips:
    return
  shared = ({group_of(clip) for clip in clips['train']}
            & {group_of(clip) for clip in clips['validation']})
  if shared:
    raise catalog.DatasetValidationError(
        f'{csv_path}: {len(shared)} group(s) have clips in both train and validation, e.g. '
        f'{sorted(shared)[:5]}; put every clip of a group (column `group`, else `segment`) in '
        'one split.')


class AudioFolder(builder_base.LogmelBuilder):
  """Log-mel features of a user's audio directory described by a CSV."""

  name = 'audio_folder'

  def __init__(self, *, manual_dir: str, **kwargs):
    self.manual_dir = manual_dir
    self._folder = None
    super().__init__(**kwargs)

  def folder(self) -> FolderCatalog:
    if self._folder is None:
      options = self.builder_config.options
      self._folder = read_folder_catalog(
          self.manual_dir, options['csv'], options['train_folds'], options['test_folds'],
          options['validation_folds'], options['validation_fraction'], options['validation_seed'])
    return self._folder

  def class_names(self) -> tuple:
    return self.folder().class_names

  def device_names(self) -> tuple:
    return self.folder().device_names

  def read_clips(self) -> dict:
    return self.folder().clips

  def extractor(self):
    return builder_base.file_extractor(self.builder_config.feature_params)

  @classmethod
  def config_from(cls, config: ml_collections.ConfigDict) -> builder_base.LogmelConfig:
    params = features_lib.feature_params(config.features)
    options = dict(manual_dir=os.path.realpath(os.path.expanduser(config.data.manual_dir)),
                   csv=config.data.csv, train_folds=config.data.train_folds,
                   test_folds=config.data.test_folds,
                   validation_folds=config.data.validation_folds,
                   validation_fraction=float(config.data.validation_fraction),
                   validation_seed=int(config.data.validation_seed))
    return builder_base.LogmelConfig(
        name=builder_base.config_name('', params, options), feature_params=params,
        options=options, description=f'Audio folder {options["manual_dir"]}, CSV {options["csv"]}.')

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'AudioFolder':
    return cls(config=cls.config_from(config), data_dir=config.data.data_dir,
               manual_dir=config.data.manual_dir, num_workers=config.data.num_workers)
