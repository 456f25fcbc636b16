"""Catalogues of audio clips read from metadata CSVs, validated before anything is written.

A `Clip` is one example to write: where its audio is and the metadata stored with it. A
`ProblemLog` collects every problem found while reading the CSVs (with CSV file and line) so
that a builder can raise one `DatasetValidationError` listing the first offenders and the
count per kind of problem. Paths from CSVs never leave the dataset root ('..', absolute paths
and symlinks that resolve outside are problems).
"""

import collections
import csv
import dataclasses
import os
from typing import Iterator, Optional, Sequence

import numpy as np
import soundfile

from asc_jax import features as features_lib

SHOWN_OFFENDERS = 20


class DatasetValidationError(ValueError):
  """The dataset on disk is inconsistent; the message lists offenders and counts per kind."""


@dataclasses.dataclass(frozen=True)
class Clip:
  """One example: its audio source (a file path or a generator spec) and its metadata."""
  source: object
  label: str
  device: str
  city: str
  identifier: str
  segment_id: str
  filename: str


@dataclasses.dataclass(frozen=True)
class CsvRow:
  csv_path: str
  line: int
  fields: dict


class ProblemLog:
  """Problems found in a dataset, each with where it was found."""

  def __init__(self, dataset: str):
    self.dataset = dataset
    self.problems = []   # (csv path, line or 0, kind, message)

  def add(self, kind: str, csv_path: str, line: int, message: str) -> None:
    """Logs a problem of `kind` at `line` of `csv_path` (line 0: the file as a whole)."""
    self.problems.append((csv_path, line, kind, message))

  def add_row(self, kind: str, row: 'CsvRow', message: str) -> None:
    self.add(kind, row.csv_path, row.line, message)

  def raise_if_any(self) -> None:
    if not self.problems:
      return
    counts = collections.Counter(kind for _, _, kind, _ in self.problems)
    lines = [f'{self.dataset}: {len(self.problems)} problem(s) found; nothing was written.',
             'Problems per kind:']
    lines += [f'  {kind}: {count}' for kind, count in counts.most_common()]
    lines.append(f'First {min(SHOWN_OFFENDERS, len(self.problems))} offenders:')
    first = sorted(self.problems, key=lambda problem: problem[:2])[:SHOWN_OFFENDERS]
    lines += [f'  {csv_path}{f" line {line}" if line else ""}: {kind}: {message}'
              for csv_path, line, kind, message in first]
    lines.append('Fix or remove these rows (or restore the files), then run again.')
    raise DatasetValidationError('\n'.join(lines))


def sniff_delimiter(csv_path: str) -> str:
  """TAB if the header line holds a TAB, else comma."""
  with open(csv_path, encoding='utf-8-sig', newline='') as file:
    return '\t' if '\t' in file.readline() else ','


def read_csv(csv_path: str, required: Sequence[str], optional: Sequence[str], problems: ProblemLog,
             delimiter: Optional[str] = None) -> Iterator[CsvRow]:
  """Yields the rows of a CSV with a header line, keyed by lower-case column name.

  Rows with the wrong number of fields or empty required fields are logged as malformed and
  skipped; a header that lacks a required column raises at once.
  """
  delimiter = delimiter or sniff_delimiter(csv_path)
  with open(csv_path, encoding='utf-8-sig', newline='') as file:
    reader = csv.reader(file, delimiter=delimiter)
    header = [name.strip().lower() for name in next(reader, [])]
    missing = [name for name in required if name not in header]
    if missing:
      raise DatasetValidationError(
          f'{csv_path} line 1: the header {header} lacks the column(s) {missing}; the file must '
          f'start with a header line naming {list(required)} (optional: {list(optional)}), '
          f'separated by {"TAB" if delimiter == chr(9) else "commas"}.')
    wanted = [name for name in header if name in (*required, *optional)]
    for fields in reader:
      if not any(field.strip() for field in fields):
        continue
      if len(fields) != len(header):
        problems.add('malformed row', csv_path, reader.line_num,
                     f'{len(fields)} fields where the header has {len(header)}')
        continue
      row = {name: field.strip() for name, field in zip(header, fields) if name in wanted}
      empty = [name for name in required if not row[name]]
      if empty:
        problems.add('malformed row', csv_path, reader.line_num, f'empty {empty}')
        continue
      yield CsvRow(csv_path, reader.line_num, row)


def resolve_inside(root: str, relative: str) -> Optional[str]:
  """The real path of `relative` under `root`, or None if it would leave `root`."""
  normalized = relative.replace('\\', '/')
  if os.path.isabs(normalized) or normalized.startswith('/') or '..' in normalized.split('/'):
    return None
  real_root = os.path.realpath(root)
  real = os.path.realpath(os.path.join(real_root, normalized))
  if os.path.commonpath([real_root, real]) != real_root:
    return None
  return real


def audio_problem(path: str) -> Optional[tuple]:
  """(kind, detail) of why `path` is not usable audio (missing, unreadable, empty, truncated),
  or None. A truncated FLAC is only found when it is decoded (features.read_checked)."""
  if not os.path.isfile(path):
    return 'missing audio file', 'no such file'
  try:
    info = soundfile.info(path)
    shortfall = features_lib.wav_data_shortfall(path)
  except Exception as error:  # soundfile raises several types for unreadable files.
    return 'unreadable audio', str(error)
  if info.frames == 0:
    return 'empty audio file', 'the file holds no samples'
  if shortfall is not None:
    return 'truncated audio', (f'the header declares {shortfall[0]:,} bytes of audio, the file '
                               f'holds {shortfall[1]:,} (an interrupted copy?)')
  return None


def check_audio(root: str, row: CsvRow, problems: ProblemLog) -> Optional[str]:
  """The checked path of a row's audio file, or None after logging why it is unusable."""
  relative = row.fields['filename']
  path = resolve_inside(root, relative)
  if path is None:
    problems.add_row('path leaves the dataset root', row,
                 f'{relative!r} (no absolute paths, ".." or symlinks pointing outside {root})')
    return None
  problem = audio_problem(path)
  if problem is not None:
    kind, detail = problem
    problems.add_row(kind, row, f'{relative}: {detail}')
    return None
  return path


def flag_duplicates(rows: Sequence[CsvRow], key: str, problems: ProblemLog) -> list:
  """Rows whose `key` field was not seen before; later repeats are logged as duplicates."""
  first_line = {}
  unique = []
  for row in rows:
    value = row.fields[key]
    if value in first_line:
      problems.add_row('duplicate row', row,
                   f'{value} already listed on line {first_line[value]}')
      continue
    first_line[value] = row.line
    unique.append(row)
  return unique


def hold_out_groups(group_sizes: dict, stratum_of: dict, fraction: float, seed: int) -> set:
  """The groups held out for validation: about `fraction` of the clips of every stratum.

  group_sizes: {group: clip count}; stratum_of: {group: its stratum} (e.g. the scene or the
  device most of its clips have). Per stratum (sorted), its groups are visited in the order of
  a numpy Generator seeded with [seed, stratum index] and a group is held out while that brings
  the held clip count closer to fraction x the stratum's clips; so a stratum of one small
  group keeps it in training. Whole groups go to one side: nothing of a held group stays.
  """
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f'validation fraction {fraction} must lie in [0, 1): set '
                     'config.data.validation_fraction.')
  by_stratum = collections.defaultdict(list)
  for group in sorted(group_sizes):
    by_stratum[stratum_of[group]].append(group)
  held = set()
  for index, stratum in enumerate(sorted(by_stratum)):
    groups = by_stratum[stratum]
    wanted = fraction * sum(group_sizes[group] for group in groups)
    taken = 0
    for position in np.random.default_rng([seed, index]).permutation(len(groups)):
      group = groups[position]
      if taken + group_sizes[group] / 2 < wanted:
        held.add(group)
        taken += group_sizes[group]
  return held


def split_off_validation(clips: Sequence['Clip'], group_of, stratum_of, fraction: float,
                         seed: int) -> tuple:
  """(train, validation) clips: whole groups (group_of(clip)) held out by `hold_out_groups`,
  stratified by the stratum (stratum_of(clip)) most of a group's clips have."""
  sizes = collections.Counter(group_of(clip) for clip in clips)
  strata = collections.defaultdict(collections.Counter)
  for clip in clips:
    strata[group_of(clip)][stratum_of(clip)] += 1
  majority = {group: max(sorted(counts), key=counts.__getitem__)
              for group, counts in strata.items()}
  held = hold_out_groups(dict(sizes), majority, fraction, seed)
  return ([clip for clip in clips if group_of(clip) not in held],
          [clip for clip in clips if group_of(clip) in held])
