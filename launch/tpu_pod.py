"""Train on a Cloud TPU VM slice: create it, install asc_jax on every worker, run the same command
on all workers (JAX finds its peers by itself on TPU), fetch the workdir from worker 0, delete it.

  python launch/tpu_pod.py --name=asc-v4-32 --project=my-project --zone=us-central2-b \
      --accelerator_type=v4-32 --runtime_version=tpu-ubuntu2204-base \
      --source_dir=. --config=configs/bcresnet.py:mod8 --workdir=/mnt/shared/asc_mod8 \
      --output_dir=./results --extra_args='--config.data.manual_dir=/mnt/shared/TAU2020' --dry_run

--dry_run prints the exact commands without running any. The workdir must be a directory that
every worker sees (an NFS / Filestore mount): Orbax writes one checkpoint from all processes.
The slice is deleted at the end, also when a step fails, unless --keep is given.
"""

import shlex

from absl import app
from absl import flags

import shell

_NAME = flags.DEFINE_string('name', None, 'TPU VM name.', required=True)
_PROJECT = flags.DEFINE_string('project', None, 'Google Cloud project.', required=True)
_ZONE = flags.DEFINE_string('zone', None, 'Zone, e.g. us-central2-b.', required=True)
_ACCELERATOR = flags.DEFINE_string('accelerator_type', None,
                                   'Slice type, e.g. v4-32, v5litepod-16.', required=True)
_RUNTIME = flags.DEFINE_string('runtime_version', None, 'TPU VM image, e.g. tpu-ubuntu2204-base.',
                               required=True)
_SOURCE = flags.DEFINE_string('source_dir', None, 'Local asc_jax checkout copied to every worker.',
                              required=True)
_CONFIG = flags.DEFINE_string('config', None, 'Config file relative to the checkout, e.g. '
                              'configs/bcresnet.py:mod8.', required=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Workdir on the workers (shared by all of them).',
                               required=True)
_OUTPUT = flags.DEFINE_string('output_dir', None, 'Local directory the workdir is copied into.',
                              required=True)
_MODULE = flags.DEFINE_enum('module', 'asc_jax.main', ['asc_jax.main', 'asc_jax.ablate'],
                            'Entry point run on every worker.')
_EXTRA = flags.DEFINE_string('extra_args', '', 'More arguments for the entry point, shell-quoted '
                             "(e.g. \"--sweep 'model.norm_lambda=0,0.1' --seeds 3\").")
_REMOTE_DIR = flags.DEFINE_string('remote_dir', 'asc_jax', 'Checkout location on the workers '
                                  '(relative to the home directory).')
_JAX_SPEC = flags.DEFINE_string('jax_spec', 'jax[tpu]==0.10.2', 'pip requirement for TPU JAX.')
_KEEP = flags.DEFINE_bool('keep', False, 'Keep the TPU VM at the end instead of deleting it.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print the commands without running them.')


def tpu_vm(*arguments: str) -> list[str]:
  """A `gcloud compute tpus tpu-vm` command with the project and zone."""
  return ['gcloud', 'compute', 'tpus', 'tpu-vm', *arguments, f'--project={_PROJECT.value}',
          f'--zone={_ZONE.value}']


def on_all_workers(remote_command: str) -> list[str]:
  return tpu_vm('ssh', _NAME.value, '--worker=all', f'--command={remote_command}')


def commands() -> dict[str, list[str]]:
  """The launch's commands by stage: create, copy, install, train, fetch, delete."""
  remote = _REMOTE_DIR.value
  install = (f'python3 -m pip install -U "{_JAX_SPEC.value}" && '
             f'python3 -m pip install -e {shlex.quote(remote)}')
  train = shlex.join(['python3', '-m', _MODULE.value, f'--config={_CONFIG.value}',
                      f'--workdir={_WORKDIR.value}', *shlex.split(_EXTRA.value)])
  return {
      'create': tpu_vm('create', _NAME.value, f'--accelerator-type={_ACCELERATOR.value}',
                       f'--version={_RUNTIME.value}'),
      'copy': tpu_vm('scp', '--recurse', _SOURCE.value, f'{_NAME.value}:{remote}', '--worker=all'),
      'install': on_all_workers(install),
      'train': on_all_workers(f'cd {shlex.quote(remote)} && {train}'),
      'fetch': tpu_vm('scp', '--recurse', f'{_NAME.value}:{_WORKDIR.value}', _OUTPUT.value,
                      '--worker=0'),
      'delete': tpu_vm('delete', _NAME.value, '--quiet'),
  }


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  stages = commands()
  runner = shell.CommandRunner(_DRY_RUN.value)
  runner.run(stages['create'])
  try:
    for stage in ('copy', 'install', 'train', 'fetch'):
      runner.run(stages[stage])
  finally:
    if not _KEEP.value:
      runner.run(stages['delete'])


if __name__ == '__main__':
  app.run(main)
