"""Shared TFDS plumbing: the log-mel example schema, parallel extraction, safe builds, reading.

Every builder here subclasses `LogmelBuilder`: it names its clips (`read_clips`, validated before
anything is written) and how to turn a clip's source into a log-mel (`extractor`). The base
class writes array_record shards whose examples carry 'logmel' float32 [n_mels, frames],
'label' (ClassLabel) and the Text fields 'device', 'city', 'identifier', 'segment_id',
'filename'. Extraction runs in a 'spawn' process pool (never fork: the parent may hold jax)
with a progress bar. A failed build leaves no directory behind. Reading needs only the
prepared directory (`tfds.builder_from_directory`), not the audio or the builder class.
"""

import abc
import collections
import contextlib
import dataclasses
import functools
import multiprocessing
import os
import shutil
import tempfile
from typing import Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from asc_jax import features as features_lib
from asc_jax.data import catalog

TEXT_FIELDS = ('device', 'city', 'identifier', 'segment_id', 'filename')
SPLITS = ('train', 'test')
BLAS_THREAD_VARIABLES = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')


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
    """{'train': [Clip], 'test': [Clip]}, validated; raises DatasetValidationError."""

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
    return {split: self._generate_examples(split, clips)
            for split, clips in self.clips().items()}

  def _generate_examples(self, split: str, clips: Sequence[catalog.Clip]) -> Iterator:
    logmels = parallel_map(self.extractor(), [clip.source for clip in clips], self.num_workers,
                           f'{self.name} {split}')
    for clip, logmel in zip(clips, logmels):
      example = {'logmel': logmel, 'label': clip.label}
      example.update({name: getattr(clip, name) for name in TEXT_FIELDS})
      yield clip.filename, example

  @property
  def prepared_dir(self) -> str:
    return os.fspath(self.data_path)

  def build(self) -> None:
    """Validates the catalogue, then writes every split; a failure leaves no directory behind."""
    self.clips()
    config_dir = os.path.dirname(self.prepared_dir)
    dataset_dir = os.path.dirname(config_dir)
    first_new = next((path for path in (dataset_dir, config_dir) if not os.path.exists(path)),
                     None)
    os.makedirs(self.data_root, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=self.data_root, prefix='.downloads-') as downloads:
      try:
        self.download_and_prepare(download_dir=downloads, file_format='array_record')
      except BaseException:
        if first_new is not None:
          shutil.rmtree(first_new, ignore_errors=True)
        raise


def is_prepared(path: str) -> bool:
  """Whether `path` holds a finished build (TFDS renames its incomplete dir only at the end)."""
  return os.path.isfile(os.path.join(path, 'dataset_info.json'))


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
  """Sets environment variables (inherited by processes started inside), then restores them."""
  saved = {name: os.environ.get(name) for name in values}
  os.environ.update(values)
  try:
    yield
  finally:
    for name, value in saved.items():
      if value is None:
        os.environ.pop(name, None)
      else:
        os.environ[name] = value


def available_cores() -> int:
  """CPU cores this process may run on (respects affinity masks and container limits)."""
  if hasattr(os, 'sched_getaffinity'):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def extraction_chunksize(num_items: int, workers: int) -> int:
  return max(1, min(16, num_items // (workers * 8)))


def parallel_map(function: Callable, items: Sequence, num_workers: int, description: str
                 ) -> Iterator:
  """function(item) for every item, in order, over `num_workers` spawned processes (0 = all)."""
  workers = min(num_workers or available_cores(), max(1, len(items)))
  with tqdm.tqdm(total=len(items), unit='clip', desc=description, smoothing=0.1) as bar:
    if workers == 1:
      for result in map(function, items):
        bar.update()
        yield result
      return
    # One BLAS thread per worker: the processes already use every core, and threaded BLAS on
    # these small matrices is several times slower.
    with environment({name: '1' for name in BLAS_THREAD_VARIABLES}):
      pool = multiprocessing.get_context('spawn').Pool(workers)
    with pool:
      for result in pool.imap(function, items, extraction_chunksize(len(items), workers)):
        bar.update()
        yield result


def file_extractor(feature_params: Mapping) -> Callable[[str], np.ndarray]:
  """A picklable path -> log-mel function for the given front end."""
  return functools.partial(features_lib.extract_logmel, features=dict(feature_params))


def read_prepared(prepared_dir: str) -> tuple:
  """(sources by split, DatasetInfo) of a prepared directory, without the builder class."""
  builder = tfds.builder_from_directory(prepared_dir)
  return builder.as_data_source(), builder.info
