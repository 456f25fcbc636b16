"""Feature-extraction worker processes for a dataset build, kept for all of its splits.

`ExtractionPool.schedule` takes every split's work at once and returns one ordered iterator
per split. A feeder thread hands tasks (a few clips each) to the workers up to `max_ahead`
clips (and MAX_AHEAD_BYTES) beyond what the builder has consumed, so the workers go on into the
next split while TFDS sorts and writes the finished one (it writes a split only after its last
example), and memory stays bounded however large the splits are.

Log-mels come back through a file-backed shared mapping with a slot per clip in flight, not
through the pool's pipe: pickling 441 KB per TAU clip through a pipe cost the writing process
about 1.5 ms per clip, a sixth of a 2-core build. The mapping is a file in the dataset
directory, not /dev/shm, which containers often cap at 64 MB.

Workers are spawned (never forked: the parent may hold jax), with one BLAS thread each, and
without re-importing the parent's `__main__`. Each warms up on a silent clip, loading librosa's
lazily imported spectral code and compiled kernels while the catalogue is still being
validated. With one worker, extraction runs lazily in this process.
"""

import contextlib
import mmap
import multiprocessing
import os
import queue
import sys
import tempfile
import threading
import types
from typing import Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

from asc_jax import console
from asc_jax import features as features_lib

BLAS_THREAD_VARIABLES = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')
ONE_BLAS_THREAD = {name: '1' for name in BLAS_THREAD_VARIABLES}
CLIPS_PER_TASK = 8
MAX_AHEAD_BYTES = 256 * 2**20   # log-mels extracted but not yet written, at most.
FEEDER_POLL_S = 0.1


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


@contextlib.contextmanager
def parent_main_hidden() -> Iterator[None]:
  """Processes spawned inside do not re-import the parent's `__main__`.

  A spawned child imports the parent's main module first (for `python -m asc_jax.main` that
  is jax, flax and orbax: over a second per worker). Extraction workers only run functions
  from asc_jax modules, so they start with an empty stand-in for `__main__`.
  """
  main_module = sys.modules['__main__']
  sys.modules['__main__'] = types.ModuleType('__main__')
  try:
    yield
  finally:
    sys.modules['__main__'] = main_module


def available_cores() -> int:
  """CPU cores this process may run on (respects affinity masks and container limits)."""
  if hasattr(os, 'sched_getaffinity'):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


class ResultSlots:
  """A file-backed shared mapping of `slots` slots of `slot_bytes` bytes each."""

  def __init__(self, path: str, slots: int, slot_bytes: int):
    self.path, self.slot_bytes = path, slot_bytes
    descriptor = os.open(path, os.O_RDWR)
    try:
      self.mapping = mmap.mmap(descriptor, slots * slot_bytes)
    finally:
      os.close(descriptor)

  @classmethod
  def create(cls, directory: str, slots: int, slot_bytes: int) -> 'ResultSlots':
    descriptor, path = tempfile.mkstemp(dir=directory, prefix='.extraction-')
    try:
      os.ftruncate(descriptor, slots * slot_bytes)
    finally:
      os.close(descriptor)
    return cls(path, slots, slot_bytes)

  def view(self, slot: int, shape: tuple, dtype: str) -> np.ndarray:
    return np.ndarray(shape, dtype, buffer=self.mapping, offset=slot * self.slot_bytes)

  def put(self, slot: int, value: np.ndarray) -> tuple:
    """Stores `value` in `slot`; returns (shape, dtype) to read it back with `view`."""
    if value.nbytes > self.slot_bytes:
      raise ValueError(f'an extracted array of shape {value.shape} ({value.nbytes} bytes) '
                       f'exceeds the {self.slot_bytes}-byte slot sized from the front end')
    self.view(slot, value.shape, value.dtype.str)[...] = value
    return value.shape, value.dtype.str

  def remove(self) -> None:
    self.mapping.close()
    os.remove(self.path)


_worker_slots: Optional[ResultSlots] = None


def start_worker(feature_params: Mapping, slots_path: str, slots: int, slot_bytes: int) -> None:
  """Pool initializer: maps the result slots and warms the front end up."""
  global _worker_slots
  _worker_slots = ResultSlots(slots_path, slots, slot_bytes)
  features_lib.warm_up(feature_params)


def run_task(function: Callable, items: Sequence, first_slot: int) -> list:
  """function(item) into consecutive slots from `first_slot`; returns their (shape, dtype)."""
  return [_worker_slots.put(first_slot + offset, np.asarray(function(item)))
          for offset, item in enumerate(items)]


def chunks(items: Sequence, size: int) -> list:
  return [items[start:start + size] for start in range(0, len(items), size)]


class ExtractionPool:
  """`num_workers` extraction processes (0 = one per core) serving every split of a build."""

  def __init__(self, num_workers: int, feature_params: Mapping, scratch_dir: str,
               max_ahead: int = 512):
    self.workers = num_workers or available_cores()
    self.feature_params = features_lib.feature_params(feature_params)
    self.scratch_dir = scratch_dir
    self.slot_bytes = (self.feature_params['n_mels'] * features_lib.num_frames(self.feature_params)
                       * np.dtype(np.float32).itemsize)
    max_ahead = min(max_ahead, MAX_AHEAD_BYTES // self.slot_bytes)
    self.max_ahead_tasks = max(2 * self.workers, max_ahead // CLIPS_PER_TASK)
    self._pool = None
    self._slots = None
    self._closing = threading.Event()
    self._feeder = None
    self._bars = []

  def __enter__(self) -> 'ExtractionPool':
    if self.workers == 1:
      return self
    console.note(f'starting {self.workers} feature-extraction worker processes (each loads '
                 'librosa and warms up: the first clips take a few seconds)')
    slots = self.max_ahead_tasks * CLIPS_PER_TASK
    self._slots = ResultSlots.create(self.scratch_dir, slots, self.slot_bytes)
    # One BLAS thread per worker: the processes already use every core, and threaded BLAS on
    # these small matrices is several times slower.
    try:
      with environment(ONE_BLAS_THREAD), parent_main_hidden():
        self._pool = multiprocessing.get_context('spawn').Pool(
            self.workers, initializer=start_worker,
            initargs=(self.feature_params, self._slots.path, slots, self.slot_bytes))
    except BaseException:
      self._slots.remove()
      raise
    return self

  def __exit__(self, *exc_info) -> None:
    for bar in self._bars:
      bar.close()
    self._closing.set()
    if self._feeder is not None:
      self._feeder.join()
    if self._pool is not None:
      self._pool.terminate()
      self._pool.join()
    if self._slots is not None:
      self._slots.remove()

  def schedule(self, function: Callable, work: Mapping[str, Sequence],
               description: str = 'extract') -> dict:
    """{name: iterator of function(item) for its items, in order}, consumed in `work`'s order.

    Call once per build. One progress bar, `description`, counts the items of every iterator
    (clips, clips/s and the ETA of the whole build); it closes after the last one.
    """
    bar = _SharedBar(sum(len(items) for items in work.values()), description)
    self._bars.append(bar)
    if self._pool is None:
      return {name: bar.count(map(function, items)) for name, items in work.items()}
    pending = {name: queue.Queue() for name in work}
    task_slots = threading.BoundedSemaphore(self.max_ahead_tasks)
    tasks = [(name, chunk) for name, items in work.items()
             for chunk in chunks(list(items), CLIPS_PER_TASK)]
    self._feeder = threading.Thread(target=self._feed, args=(function, tasks, pending,
                                                             task_slots),
                                    name='extraction-feeder', daemon=True)
    self._feeder.start()
    return {name: bar.count(self._collect(pending[name], len(items), task_slots))
            for name, items in work.items()}

  def _feed(self, function: Callable, tasks: list, pending: Mapping[str, queue.Queue],
            task_slots: threading.BoundedSemaphore) -> None:
    """Submits tasks in order, each once a task slot is free; stops when the pool closes.

    Task i writes to result slots from (i % max_ahead_tasks) * CLIPS_PER_TASK: it is
    submitted only after task i - max_ahead_tasks, the last user of those slots, was collected.
    """
    for index, (name, chunk) in enumerate(tasks):
      while not task_slots.acquire(timeout=FEEDER_POLL_S):
        if self._closing.is_set():
          return
      if self._closing.is_set():
        return
      first_slot = (index % self.max_ahead_tasks) * CLIPS_PER_TASK
      try:
        task = self._pool.apply_async(run_task, (function, chunk, first_slot))
      except Exception as error:  # the pool broke: the split's reader raises it.
        pending[name].put((first_slot, error))
        return
      pending[name].put((first_slot, task))

  def _collect(self, results: queue.Queue, count: int, task_slots: threading.BoundedSemaphore
               ) -> Iterator:
    """The `count` results of one split: copied out of their slots, which are then freed."""
    delivered = 0
    while delivered < count:
      first_slot, task = results.get()
      if isinstance(task, Exception):
        raise task
      layouts = task.get()   # re-raises a worker's exception here.
      arrays = [self._slots.view(first_slot + offset, *layout).copy()
                for offset, layout in enumerate(layouts)]
      task_slots.release()
      delivered += len(arrays)
      yield from arrays


class _SharedBar:
  """One progress bar over several iterators: it closes when `total` items have passed."""

  def __init__(self, total: int, description: str):
    self.total, self.done = total, 0
    self.bar = console.progress(total=total, desc=description, unit='clip')

  def count(self, results: Iterator) -> Iterator:
    for result in results:
      self.done += 1
      self.bar.update()
      if self.done == self.total:
        self.close()
      yield result

  def close(self) -> None:
    self.bar.close()
