"""Starting the localhost multi-host workers (tests/multihost_worker.py) and collecting them."""

import json
import os
import socket
import subprocess
import sys

WORKER = os.path.join(os.path.dirname(__file__), 'multihost_worker.py')
NUM_PROCESSES = 2


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(('localhost', 0))
    return probe.getsockname()[1]


def start(config, workdir, results_dir, tag: str = 'result') -> list[subprocess.Popen]:
  """NUM_PROCESSES workers training `config` in `workdir` (2 forced CPU devices each)."""
  config_json = results_dir / f'{tag}_config.json'
  config_json.write_text(config.to_json())
  coordinator = f'localhost:{free_port()}'
  environment = dict(os.environ, JAX_PLATFORMS='cpu',
                     XLA_FLAGS='--xla_force_host_platform_device_count=2')
  return [subprocess.Popen(
      [sys.executable, WORKER, str(config_json), str(workdir),
       str(results_dir / f'{tag}_{index}.json'), coordinator, str(index), str(NUM_PROCESSES)],
      env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for index in range(NUM_PROCESSES)]


def finish(workers: list[subprocess.Popen], results_dir, tag: str = 'result',
           timeout_s: int = 420) -> list[dict]:
  """Waits for every worker (generous timeout: shared CI cores), asserts each exited 0 and returns
  their result JSONs in process order."""
  outputs = []
  try:
    for worker in workers:
      outputs.append(worker.communicate(timeout=timeout_s)[0])
  finally:
    for worker in workers:
      if worker.poll() is None:
        worker.kill()
  for index, (worker, output) in enumerate(zip(workers, outputs)):
    assert worker.returncode == 0, f'process {index} failed:\n{output[-4000:]}'
  return [json.loads((results_dir / f'{tag}_{index}.json').read_text())
          for index in range(len(workers))]
