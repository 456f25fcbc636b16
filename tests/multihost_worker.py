"""One process of the localhost multi-host test (tests/test_distributed.py starts two).

  python tests/multihost_worker.py CONFIG_JSON WORKDIR RESULT_JSON COORDINATOR PROCESS_ID \
      NUM_PROCESSES

The caller sets JAX_PLATFORMS=cpu and XLA_FLAGS (forced CPU devices) in the environment. The
process joins the runtime through asc_jax.distributed, trains and evaluates the config with
train.train_and_evaluate, and writes its final metrics and device counts to RESULT_JSON, or
{'stopped': true} when a stop signal (on any process) ended the run early.
"""

import json
import sys

import jax
import ml_collections

from asc_jax import distributed
from asc_jax import fileio
from asc_jax import train


def main(config_json, workdir, result_json, coordinator, process_id, num_processes):
  with open(config_json, encoding='utf-8') as file:
    config = ml_collections.ConfigDict(json.load(file))
  config.distributed.update(dict(coordinator_address=coordinator,
                                 num_processes=int(num_processes), process_id=int(process_id)))
  joined = distributed.initialize(config.distributed)
  final = train.train_and_evaluate(config, workdir)
  if final is None:
    fileio.atomic_write_json(result_json, {'stopped': True, 'process_index': jax.process_index()})
    jax.distributed.shutdown()
    return
  fileio.atomic_write_json(result_json, {
      'stopped': False, 'joined': joined, 'process_index': jax.process_index(),
      'process_count': jax.process_count(), 'device_count': jax.device_count(),
      'local_device_count': jax.local_device_count(), 'is_primary': distributed.is_primary(),
      'accuracy': final['accuracy'], 'log_loss': final['log_loss']})
  jax.distributed.shutdown()


if __name__ == '__main__':
  main(*sys.argv[1:])
