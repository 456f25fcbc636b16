"""Multi-host set-up: joining JAX's multi-controller runtime, and the few things that need it.

Every process of a multi-host run executes the same program (one per host, or one per GPU); they
find each other through `jax.distributed.initialize`. `initialize(config.distributed)` must run
before anything touches jax devices. What it does, by config.distributed.num_processes:

  1     a single process: nothing (never joins a runtime).
  > 1   explicit: coordinator_address (or $JAX_COORDINATOR_ADDRESS), num_processes and
        process_id (or $JAX_PROCESS_ID) are passed to JAX as given.
  0     automatic (the default): joins when JAX recognises a cluster (Cloud TPU VM slice, SLURM,
        Open MPI) or $JAX_COORDINATOR_ADDRESS is set; a plain single-host run needs nothing.

`prepare_dataset` builds a dataset on process 0 while the others wait, so no two processes
write the same files; `is_primary` says whether this process writes logs and reports.
"""

import os
from typing import Optional

import jax
import ml_collections
from jax.experimental import multihost_utils

from asc_jax.data import datasets

NUM_PROCESSES_ENV = 'JAX_NUM_PROCESSES'
PROCESS_ID_ENV = 'JAX_PROCESS_ID'
COORDINATOR_ENV = 'JAX_COORDINATOR_ADDRESS'


def is_primary() -> bool:
  """True on the one process (index 0) that writes logs, reports and run files."""
  return jax.process_index() == 0


def parse_device_ids(text: str, key: str = 'config.distributed.local_device_ids'
                     ) -> Optional[list[int]]:
  """'0,1' -> [0, 1]; '' -> None (every local device)."""
  if not text.strip():
    return None
  try:
    return [int(part) for part in text.split(',')]
  except ValueError:
    raise ValueError(f'{key}={text!r} must be comma-separated device numbers such as "0,1".'
                     ) from None


def _env_int(name: str) -> Optional[int]:
  value = os.environ.get(name, '').strip()
  if not value:
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f'environment variable {name}={value!r} must be an integer.') from None


def cluster_detected() -> bool:
  """Whether JAX's own cluster detection (TPU VM, SLURM, Open MPI, ...) recognises this host."""
  from jax._src import clusters  # JAX's detectors; the public API exposes no query for them.
  return any(not cluster.opt_in_only_method and cluster.is_env_present()
             for cluster in clusters.ClusterEnv._cluster_types)


def initialize_arguments(section: ml_collections.ConfigDict) -> Optional[dict]:
  """The keyword arguments for jax.distributed.initialize, or None for a single-process run."""
  num_processes = section.num_processes or _env_int(NUM_PROCESSES_ENV) or 0
  if num_processes < 0:
    raise ValueError(f'config.distributed.num_processes={num_processes} must be 0 (automatic), '
                     '1 (single process) or the number of processes.')
  if num_processes == 1:
    return None
  coordinator = section.coordinator_address or os.environ.get(COORDINATOR_ENV, '')
  process_id = section.process_id if section.process_id >= 0 else _env_int(PROCESS_ID_ENV)
  device_ids = parse_device_ids(section.local_device_ids)
  if num_processes > 1:
    if not coordinator:
      raise ValueError(f'config.distributed.num_processes={num_processes} needs '
                       'config.distributed.coordinator_address (host:port of process 0) or '
                       f'${COORDINATOR_ENV}.')
    if process_id is None or not 0 <= process_id < num_processes:
      raise ValueError(f'config.distributed.process_id={section.process_id} must be in '
                       f'[0, {num_processes}) (or set ${PROCESS_ID_ENV}) when '
                       f'num_processes={num_processes}.')
  elif not (coordinator or cluster_detected()):
    return None
  return dict(coordinator_address=coordinator or None, num_processes=num_processes or None,
              process_id=process_id, local_device_ids=device_ids)


def initialize(section: ml_collections.ConfigDict) -> bool:
  """Joins the multi-controller runtime when this run spans processes; True if it did (or had)."""
  if jax.distributed.is_initialized():
    return True
  arguments = initialize_arguments(section)
  if arguments is None:
    return False
  jax.distributed.initialize(**arguments)
  if is_primary():
    print(f'joined {jax.process_count()} processes: {jax.device_count()} devices, '
          f'{jax.local_device_count()} on this process')
  return True


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name` (a no-op for a single process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def prepare_dataset(config: ml_collections.ConfigDict) -> datasets.PreparedDataset:
  """datasets.prepare on process 0 first; the others open what it built (or, when their disk
  does not share its data_dir, build their own copy) after a barrier, so no build races."""
  dataset = datasets.prepare(config) if is_primary() else None
  barrier('asc_jax: dataset prepared')
  return dataset if dataset is not None else datasets.prepare(config)

