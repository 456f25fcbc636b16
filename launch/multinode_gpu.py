"""Train on N GPU nodes over ssh: one process per node, every process told the coordinator
(node 0), the process count and its own process id explicitly.

  python launch/multinode_gpu.py --hosts=gpu-node-0,gpu-node-1 --port=29500 \
      --remote_dir=/shared/asc_jax --python=/shared/venv/bin/python \
      --config=configs/bcresnet.py:mod8 --workdir=/shared/runs/asc_mod8 --dry_run

Each node runs
  PYTHON -m asc_jax.main --config=... --workdir=... \
      --config.distributed.coordinator_address=HOST0:PORT \
      --config.distributed.num_processes=N --config.distributed.process_id=I
and uses all of its GPUs (or --local_device_ids). Prerequisites: passwordless ssh to every host,
asc_jax installed at --remote_dir with a CUDA JAX in --python's environment, and a --workdir on a
file system all nodes share. Under SLURM use `srun PYTHON -m asc_jax.main ...` instead: JAX reads
the coordinator and process ids from SLURM's environment. --dry_run prints the ssh commands.
"""

import shlex

from absl import app
from absl import flags

import shell

_HOSTS = flags.DEFINE_list('hosts', None, 'ssh host names; the first one is the coordinator.',
                           required=True)
_PORT = flags.DEFINE_integer('port', None, 'Free TCP port on the first host for the coordinator.',
                             required=True)
_REMOTE_DIR = flags.DEFINE_string('remote_dir', None, 'asc_jax checkout on every host.',
                                  required=True)
_PYTHON = flags.DEFINE_string('python', None, 'Python interpreter on every host.', required=True)
_CONFIG = flags.DEFINE_string('config', None, 'Config file relative to --remote_dir.',
                              required=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Workdir on a file system all hosts share.',
                               required=True)
_MODULE = flags.DEFINE_enum('module', 'asc_jax.main', ['asc_jax.main', 'asc_jax.ablate'],
                            'Entry point run on every host.')
_LOCAL_DEVICE_IDS = flags.DEFINE_string('local_device_ids', '', "GPUs each process uses, e.g. "
                                        "'0,1,2,3'; '' = all of the node's GPUs.")
_EXTRA = flags.DEFINE_string('extra_args', '', 'More arguments for the entry point, shell-quoted.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print the commands without running them.')


def host_command(process_id: int) -> list[str]:
  """The ssh command that starts process `process_id` on its host."""
  hosts = _HOSTS.value
  arguments = [_PYTHON.value, '-m', _MODULE.value, f'--config={_CONFIG.value}',
               f'--workdir={_WORKDIR.value}',
               f'--config.distributed.coordinator_address={hosts[0]}:{_PORT.value}',
               f'--config.distributed.num_processes={len(hosts)}',
               f'--config.distributed.process_id={process_id}']
  if _LOCAL_DEVICE_IDS.value:
    arguments.append(f'--config.distributed.local_device_ids={_LOCAL_DEVICE_IDS.value}')
  arguments += shlex.split(_EXTRA.value)
  remote = f'cd {shlex.quote(_REMOTE_DIR.value)} && {shlex.join(arguments)}'
  return ['ssh', hosts[process_id], remote]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if len(set(_HOSTS.value)) != len(_HOSTS.value):
    raise app.UsageError(f'--hosts names a host twice: {_HOSTS.value}.')
  runner = shell.CommandRunner(_DRY_RUN.value)
  runner.run_together([host_command(index) for index in range(len(_HOSTS.value))])


if __name__ == '__main__':
  app.run(main)
