"""How many XLA devices a CPU host is split into for training: one setting, made before JAX starts.

XLA's CPU backend runs one program per device and parallelises inside each operation; the small
operations of BC-ResNet-Mod-2 at 128 x 173 leave part of a 2-core CPU idle. Split into two host
devices, the data-parallel step (the same global batch, halves on each device, BatchNorm
statistics and gradients still over the global batch) ran 14 % faster at batch 64 and 10 % faster
at batch 32 (2-core AMD EPYC, 2026-12-06; README, Performance), and no slower for Mod-8 at
256 x 431. So the training commands split a host into `min(cores, 2)` devices unless:
  - $ASC_JAX_HOST_DEVICES sets the number (1 = XLA's single device);
  - XLA_FLAGS already sets --xla_force_host_platform_device_count (tests, users);
  - JAX_PLATFORMS names no cpu platform, or the run is multi-process (config.distributed);
and only into as many devices as divide both the training and the evaluation batch. On a host
with a GPU or TPU the setting only affects the CPU platform, which training does not use.
"""

import os
from typing import Mapping, Optional

import ml_collections

COUNT_FLAG = '--xla_force_host_platform_device_count'
COUNT_VARIABLE = 'ASC_JAX_HOST_DEVICES'
DEFAULT_MAX_DEVICES = 2   # measured on 2 cores; more devices than that was slower (4: -3 %).


def usable_cores() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def host_device_count(config: ml_collections.ConfigDict, environ: Mapping[str, str],
                      cores: int) -> Optional[int]:
  """Devices to split this host into, or None to leave XLA's setting alone."""
  if COUNT_FLAG in environ.get('XLA_FLAGS', ''):
    return None
  platforms = environ.get('JAX_PLATFORMS', '')
  if platforms and 'cpu' not in platforms.split(','):
    return None
  distributed = config.get('distributed', {})
  if distributed.get('num_processes', 0) > 1 or distributed.get('coordinator_address', ''):
    return None
  requested = environ.get(COUNT_VARIABLE, '')
  if requested:
    if not requested.isdigit() or int(requested) < 1:
      raise ValueError(f'{COUNT_VARIABLE}={requested!r}: give a whole number of devices >= 1.')
    wanted = int(requested)
  else:
    wanted = min(cores, DEFAULT_MAX_DEVICES)
  batches = (config.train.batch_size, config.train.get('eval_batch_size', config.train.batch_size))
  return max(n for n in range(1, wanted + 1) if all(batch % n == 0 for batch in batches))


def split_host(config: ml_collections.ConfigDict) -> Optional[int]:
  """Sets XLA_FLAGS for host_device_count (call before anything touches jax devices); returns
  the count set, or None when XLA's own setting stays."""
  count = host_device_count(config, os.environ, usable_cores())
  if count is None or count == 1:
    return None
  os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} {COUNT_FLAG}={count}'.strip()
  return count
