"""TFDS builder for TAU Urban Acoustic Scenes 2020 Mobile, development set (Zenodo 3819968).

Reads the user's unpacked copy (docs/method.md section 5 layout) from config.data.manual_dir:
train = evaluation_setup/fold1_train.csv, test = evaluation_setup/fold1_evaluate.csv, and
validation = whole recording locations (identifiers, `<city>-<location>`) held out of
fold1_train: about config.data.validation_fraction of each scene's clips (0.3 by default, as
the DCASE2021 baseline), seeded by config.data.validation_seed (catalog.split_off_validation),
every device's recordings of a location on the same side. Labels
come from those CSVs; device and identifier from meta.csv; city, location and segment from the
file name `<scene>-<city>-<location>-<segment>-<device>.wav`. Everything is validated before
anything is written.
"""

import os
from typing import Optional

import ml_collections

from asc_jax import features as features_lib
from asc_jax.data import builder_base
from asc_jax.data import catalog

SCENES = ('airport', 'bus', 'metro', 'metro_station', 'park', 'public_square', 'shopping_mall',
          'street_pedestrian', 'street_traffic', 'tram')
DEVICES = ('a', 'b', 'c', 's1', 's2', 's3', 's4', 's5', 's6')
META_CSV = 'meta.csv'
SPLIT_CSVS = {'train': os.path.join('evaluation_setup', 'fold1_train.csv'),
              'test': os.path.join('evaluation_setup', 'fold1_evaluate.csv')}
SOURCE_HINT = ('The TAU Urban Acoustic Scenes 2020 Mobile development set comes from Zenodo '
               'record 3819968 (https://zenodo.org/records/3819968): download and unpack every '
               'archive into one directory (it holds audio/, meta.csv and evaluation_setup/), '
               'then set --config.data.manual_dir=PATH to that directory.')


def parse_filename(filename: str) -> Optional[tuple]:
  """(scene, city, location, segment, device) of a TAU file name, or None if it is malformed.

  TAU names are `audio/<scene>-<city>-<location>-<segment>-<device>.wav`.
  """
  stem, extension = os.path.splitext(os.path.basename(filename.replace('\\', '/')))
  parts = stem.split('-')
  if extension.lower() != '.wav' or len(parts) != 5 or not all(parts):
    return None
  return tuple(parts[:4]) + (parts[4].lower(),)


def check_manual_dir(manual_dir: str) -> str:
  """The absolute manual directory; raises FileNotFoundError saying where the data comes from."""
  if not manual_dir:
    raise FileNotFoundError(f'config.data.manual_dir is not set. {SOURCE_HINT}')
  root = os.path.abspath(os.path.expanduser(manual_dir))
  if not os.path.isdir(root) or not os.listdir(root):
    raise FileNotFoundError(f'config.data.manual_dir={manual_dir!r} is missing or empty. '
                            f'{SOURCE_HINT}')
  for relative in (META_CSV, *SPLIT_CSVS.values()):
    if not os.path.isfile(os.path.join(root, relative)):
      raise FileNotFoundError(f'{os.path.join(root, relative)} is missing: {root} does not hold '
                              f'the unpacked development set. {SOURCE_HINT}')
  return root


def read_meta(root: str, problems: catalog.ProblemLog) -> dict:
  """meta.csv rows by file name (first occurrence; repeats are logged as duplicates)."""
  rows = catalog.read_csv(os.path.join(root, META_CSV),
                          required=('filename', 'scene_label', 'identifier', 'source_label'),
                          optional=(), problems=problems, delimiter='\t')
  unique = catalog.flag_duplicates(list(rows), 'filename', problems)
  return {row.fields['filename']: row for row in unique}


def check_against_meta(row: catalog.CsvRow, meta_row: Optional[catalog.CsvRow], label: str,
                       parts: Optional[tuple], problems: catalog.ProblemLog) -> tuple:
  """(device, identifier) from meta.csv, after logging disagreements with the split CSV row."""
  if meta_row is None:
    problems.add_row('missing from meta.csv', row,
                     f'{row.fields["filename"]} has no row in {META_CSV}')
    return None, None
  if meta_row.fields['scene_label'].lower() != label:
    problems.add_row('label disagrees with meta.csv', row,
                     f'{label!r} here but {meta_row.fields["scene_label"]!r} on line '
                     f'{meta_row.line} of {META_CSV}')
  device = meta_row.fields['source_label'].lower()
  if device not in DEVICES:
    problems.add_row('unknown device', meta_row, f'{device!r} is not one of {list(DEVICES)}')
  elif parts is not None and parts[4] != device:
    problems.add_row('device disagrees with file name', meta_row,
                     f'{META_CSV} says {device!r}, the file name says {parts[4]!r}')
  return device, meta_row.fields['identifier']


def clip_from_row(root: str, row: catalog.CsvRow, meta: dict, problems: catalog.ProblemLog
                  ) -> Optional[catalog.Clip]:
  """The Clip of one split-CSV row, or None after logging everything wrong with it."""
  filename, label = row.fields['filename'], row.fields['scene_label'].lower()
  problem_count = len(problems.problems)
  parts = parse_filename(filename)
  if parts is None:
    problems.add_row('malformed file name', row, f'{filename!r} is not '
                     'audio/<scene>-<city>-<location>-<segment>-<device>.wav')
  if label not in SCENES:
    problems.add_row('unknown label', row, f'{label!r} is not one of {list(SCENES)}')
  elif parts is not None and parts[0] != label:
    problems.add_row('label disagrees with file name', row,
                     f'{label!r} here but the file name says {parts[0]!r}')
  device, identifier = check_against_meta(row, meta.get(filename), label, parts, problems)
  path = catalog.check_audio(root, row, problems)
  if len(problems.problems) != problem_count or path is None:
    return None
  return catalog.Clip(source=path, label=label, device=device, city=parts[1],
                      identifier=identifier, segment_id='-'.join(parts[:4]), filename=filename)


def location_of(clip: catalog.Clip) -> str:
  return clip.identifier


def scene_of(clip: catalog.Clip) -> str:
  return clip.label


def read_tau_catalog(manual_dir: str, validation_fraction: float = 0.0,
                     validation_seed: int = 0) -> dict:
  """{'train', 'validation' (when validation_fraction > 0), 'test': [Clip]} of a TAU layout;
  raises one error listing all problems."""
  root = check_manual_dir(manual_dir)
  problems = catalog.ProblemLog(f'TAU Urban Acoustic Scenes 2020 Mobile at {root}')
  meta = read_meta(root, problems)
  clips = {}
  for split, relative in SPLIT_CSVS.items():
    rows = catalog.read_csv(os.path.join(root, relative), required=('filename', 'scene_label'),
                            optional=(), problems=problems, delimiter='\t')
    unique = catalog.flag_duplicates(list(rows), 'filename', problems)
    clips[split] = [clip for clip in (clip_from_row(root, row, meta, problems) for row in unique)
                    if clip is not None]
  problems.raise_if_any()
  if validation_fraction > 0:
    clips['train'], validation = catalog.split_off_validation(
        clips['train'], location_of, scene_of, validation_fraction, validation_seed)
    if validation:
      clips = {'train': clips['train'], 'validation': validation, 'test': clips['test']}
  return clips


class TauUrbanAcousticScenes2020Mobile(builder_base.LogmelBuilder):
  """TAU Urban Acoustic Scenes 2020 Mobile development set, fold 1, as log-mel features."""

  name = 'tau_urban_acoustic_scenes_2020_mobile'

  def __init__(self, *, manual_dir: str, **kwargs):
    self.manual_dir = manual_dir
    super().__init__(**kwargs)

  def class_names(self) -> tuple:
    return SCENES

  def device_names(self) -> tuple:
    return DEVICES

  def read_clips(self) -> dict:
    options = self.builder_config.options
    return read_tau_catalog(self.manual_dir, options['validation_fraction'],
                            options['validation_seed'])

  def extractor(self):
    return builder_base.file_extractor(self.builder_config.feature_params)

  @classmethod
  def config_from(cls, config: ml_collections.ConfigDict) -> builder_base.LogmelConfig:
    params = features_lib.feature_params(config.features)
    options = dict(validation_fraction=float(config.data.validation_fraction),
                   validation_seed=int(config.data.validation_seed))
    return builder_base.LogmelConfig(
        name=builder_base.config_name('', params, options), feature_params=params,
        options=options,
        description=(f'Fold 1 (train: {SPLIT_CSVS["train"]} less the validation locations, '
                     f'validation: {options["validation_fraction"]:g} of its locations, seed '
                     f'{options["validation_seed"]}; test: {SPLIT_CSVS["test"]}).'))

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'TauUrbanAcousticScenes2020Mobile':
    return cls(config=cls.config_from(config), data_dir=config.data.data_dir,
               manual_dir=config.data.manual_dir, num_workers=config.data.num_workers)
