"""Shared TFDS plumbing: the log-mel example schema, parallel extraction, safe builds, reading.

Every builder here subclasses `LogmelBuilder`: it names its clips (`read_clips`, validated before
anything is written) and how to turn a clip's source into a log-mel (`extractor`). The base
class writes array_record shards whose examples carry 'logmel' float32 [n_mels, frames],
'label' (ClassLabel) and the Text fields 'device', 'city', 'identifier', 'segment_id',
'filename'. Extraction runs in an `extraction.ExtractionPool` kept for the whole build, with
one progress bar for all splits; TFDS's own bars and banners are off, and one line says where
the build went. A failed build leaves no directory behind. Builds into one data directory take
its lock file (`BUILD_LOCK`) in turn, so runs started together build a dataset once: the one that
waited finds it built and reads it.
Reading needs only the prepared directory (`tfds.builder_from_directory`), not the audio or
the builder class.
"""

import abc
import collections
import contextlib
import dataclasses
import fcntl
import functools
import os
import shutil
import tempfile
from typing import Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import tensorflow_datasets as tfds

from asc_jax import console
from asc_jax import features as features_lib
from asc_jax.data import catalog
from asc_jax.data import extraction

TEXT_FIELDS = ('device', 'city', 'identifier', 'segment_id', 'filename')
SPLITS = ('train', 'validation', 'test')   # validation: carved from training data


@dataclasses.dataclass(eq=False)
class LogmelConfig(tfds.core.BuilderConfig):
  """A builder config: the front end and the dataset-specific choices it was built with."""
  feature_params: dict = dataclasses.field(default_factory=dict)
  options: dict = dataclasses.field(default_factory=dict)


def config_name(prefix: str, feature_params: Mapping, options: Optional[Mapping] = None) -> str:
  """`<prefix>mel<n_mels>x<frames>_<hash>`: stable, and different for every front end/choice."""
  digest = features_lib.feature_hash({'features': dict(feature_params),
                                      'options': dict(options or {})})
  shape = f'mel{feature_params["n_mels"]}x{features_lib.num_frames(feature_params)}'
  return f'{prefix}{shape}_{digest}'


def resolve_data_dir(data_dir: str) -> str:
  return os.path.abspath(os.path.expanduser(data_dir or '~/tensorflow_datasets'))


def prepared_path(builder_class: type, data_dir: str, name: str) -> str:
  """Where `builder_class` writes config `name` under `data_dir` (known before building)."""
  return os.path.join(resolve_data_dir(data_dir), builder_class.name, name,
                      str(builder_class.VERSION))


class LogmelBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base builder: subclasses define the catalogue of clips and how to extract one."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Log-mel features with label, device, city, identifier, segment id.'}
  # No download checksums to look up. tfds 4.9.10 would otherwise locate them through
  # `importlib_resources`, which current etils no longer installs.
  code_path = None

  def __init__(self, *, config: LogmelConfig, data_dir: str, num_workers: int = 0, **kwargs):
    self.num_workers = num_workers
    self._clips = None
    self._pool = None
    self.data_root = resolve_data_dir(data_dir)
    super().__init__(config=config, data_dir=self.data_root,
                     file_format='array_record', **kwargs)

  @classmethod
  @abc.abstractmethod
  def config_from(cls, config) -> LogmelConfig:
    """The builder config an experiment config asks for (cheap: reads no audio)."""

  @classmethod
  @abc.abstractmethod
  def from_config(cls, config) -> 'LogmelBuilder':
    """The builder for an experiment config (config.data and config.features)."""

  @abc.abstractmethod
  def class_names(self) -> tuple:
    """The label names, in label-index order."""

  @abc.abstractmethod
  def device_names(self) -> tuple:
    """Every device the dataset can hold, in a stable order."""

  @abc.abstractmethod
  def read_clips(self) -> dict:
    """{'train': [Clip], 'validation': [Clip], 'test': [Clip]} (validation may be absent),
    validated; raises DatasetValidationError."""

  def clips(self) -> dict:
    """read_clips(), read once per builder."""
    if self._clips is None:
      self._clips = self.read_clips()
    return self._clips

  @abc.abstractmethod
  def extractor(self) -> Callable[[object], np.ndarray]:
    """A picklable function from a Clip.source to its log-mel (runs in worker processes)."""

  def _info(self) -> tfds.core.DatasetInfo:
    params = self.builder_config.feature_params
    shape = (params['n_mels'], features_lib.num_frames(params))
    # Raw bytes, not a float list: serializing 110k floats one by one cost 30 ms per 256 x 431
    # example, four times the log-mel itself, in the builder's single writing process.
    schema = {'logmel': tfds.features.Tensor(shape=shape, dtype=np.float32,
                                             encoding=tfds.features.Encoding.BYTES),
              'label': tfds.features.ClassLabel(names=list(self.class_names()))}
    schema.update({name: tfds.features.Text() for name in TEXT_FIELDS})
    return tfds.core.DatasetInfo(
        builder=self, description=self.builder_config.description,
        features=tfds.features.FeaturesDict(schema),
        metadata=tfds.core.MetadataDict(feature_params=dict(params),
                                        device_names=list(self.device_names()),
                                        options=dict(self.builder_config.options)))

  def _split_generators(self, dl_manager):
    del dl_manager  # Audio is read from the manual directory or generated.
    self.info.metadata['device_counts'] = {
        split: dict(sorted(collections.Counter(clip.device for clip in clips).items()))
        for split, clips in self.clips().items()}
    pool = self._pool or extraction.ExtractionPool(1, self.builder_config.feature_params,
                                                   self.data_root)
    logmels = pool.schedule(
        self.extractor(), {split: [clip.source for clip in clips]
                           for split, clips in self.clips().items()},
        description=f'build {self.name}')
    return {split: self._generate_examples(clips, logmels[split])
            for split, clips in self.clips().items()}

  def _generate_examples(self, clips: Sequence[catalog.Clip], logmels: Iterator) -> Iterator:
    for clip, logmel in zip(clips, logmels):
      example = {'logmel': logmel, 'label': clip.label}
      example.update({name: getattr(clip, name) for name in TEXT_FIELDS})
      yield clip.filename, example

  @property
  def prepared_dir(self) -> str:
    return os.fspath(self.data_path)

  def build(self) -> None:
    """Validates the catalogue, then writes every split; a failure leaves no directory behind.

    The extraction workers start first, so that they warm up while the catalogue is
    validated, and serve every split.
    """
    os.makedirs(self.data_root, exist_ok=True)
    with build_lock(self.data_root):
      if is_prepared(self.prepared_dir):
        console.note(f'{self.name}: {self.prepared_dir} was built by another process meanwhile; '
                     'reading it.')
        return
      tfds.disable_progress_bar()   # the extraction bar is the build's one bar.
      with extraction.ExtractionPool(self.num_workers, self.builder_config.feature_params,
                                     self.data_root) as self._pool:
        counts = {split: len(clips) for split, clips in self.clips().items()}
        console.note(f'{self.name}: building {sum(counts.values())} clips ('
                     + ', '.join(f'{split} {count}' for split, count in counts.items())
                     + f') into {self.prepared_dir}')
        self._write_splits()

  # TFDS prints a 'Downloading and preparing dataset Unknown size ...' banner before a build
  # and 'Dataset ... downloaded and prepared' after it; `build` says where the data goes instead.
  def _log_download_bytes(self) -> None:
    pass

  def _log_download_done(self) -> None:
    pass

  def _write_splits(self) -> None:
    config_dir = os.path.dirname(self.prepared_dir)
    dataset_dir = os.path.dirname(config_dir)
    first_new = next((path for path in (dataset_dir, config_dir) if not os.path.exists(path)),
                     None)
    with tempfile.TemporaryDirectory(dir=self.data_root, prefix='.downloads-') as downloads:
      try:
        self.download_and_prepare(download_dir=downloads, file_format='array_record')
      except BaseException:
        if first_new is not None:
          shutil.rmtree(first_new, ignore_errors=True)
        raise


BUILD_LOCK = '.asc_jax-build.lock'


@contextlib.contextmanager
def build_lock(data_root: str) -> Iterator[None]:
  """Holds the exclusive lock of `data_root`'s BUILD_LOCK file (an empty file, kept), waiting with
  a note while another process holds it."""
  with open(os.path.join(data_root, BUILD_LOCK), 'a') as lock_file:
    try:
      fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      console.note(f'waiting for another asc_jax build in {data_root} to finish')
      fcntl.flock(lock_file, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock_file, fcntl.LOCK_UN)


def is_prepared(path: str) -> bool:
  """Whether `path` holds a finished build (TFDS renames its incomplete dir only at the end)."""
  return os.path.isfile(os.path.join(path, 'dataset_info.json'))


def file_extractor(feature_params: Mapping) -> Callable[[str], np.ndarray]:
  """A picklable path -> log-mel function for the given front end."""
  return functools.partial(features_lib.extract_logmel, features=dict(feature_params))


def read_prepared(prepared_dir: str) -> tuple:
  """(sources by split, DatasetInfo) of a prepared directory, without the builder class."""
  builder = tfds.builder_from_directory(prepared_dir)
  return builder.as_data_source(), builder.info
