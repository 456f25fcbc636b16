"""The launch scripts' dry runs print exactly the gcloud / ssh commands they would run."""

import os
import subprocess
import sys

LAUNCH_DIR = os.path.join(os.path.dirname(__file__), '..', 'launch')


def dry_run(script: str, *arguments: str) -> list[str]:
  result = subprocess.run([sys.executable, os.path.join(LAUNCH_DIR, script), *arguments,
                           '--dry_run'], capture_output=True, text=True, check=True, timeout=60)
  return result.stdout.splitlines()


def test_tpu_pod_dry_run_creates_installs_trains_fetches_and_deletes():
  lines = dry_run('tpu_pod.py', '--name=asc-v4-32', '--project=my-project',
                  '--zone=us-central2-b', '--accelerator_type=v4-32',
                  '--runtime_version=tpu-ubuntu2204-base', '--source_dir=.',
                  '--config=configs/bcresnet.py:mod8', '--workdir=/mnt/shared/asc_mod8',
                  '--output_dir=./results',
                  '--extra_args=--config.data.manual_dir=/mnt/shared/TAU2020')
  where = '--project=my-project --zone=us-central2-b'
  assert lines == [
      'gcloud compute tpus tpu-vm create asc-v4-32 --accelerator-type=v4-32 '
      f'--version=tpu-ubuntu2204-base {where}',
      f'gcloud compute tpus tpu-vm scp --recurse . asc-v4-32:asc_jax --worker=all {where}',
      'gcloud compute tpus tpu-vm ssh asc-v4-32 --worker=all \'--command=python3 -m pip install '
      f'-U "jax[tpu]==0.10.2" && python3 -m pip install -e asc_jax\' {where}',
      'gcloud compute tpus tpu-vm ssh asc-v4-32 --worker=all \'--command=cd asc_jax && python3 -m '
      'asc_jax.main --config=configs/bcresnet.py:mod8 --workdir=/mnt/shared/asc_mod8 '
      f'--config.data.manual_dir=/mnt/shared/TAU2020\' {where}',
      'gcloud compute tpus tpu-vm scp --recurse asc-v4-32:/mnt/shared/asc_mod8 ./results '
      f'--worker=0 {where}',
      f'gcloud compute tpus tpu-vm delete asc-v4-32 --quiet {where}',
  ]


def test_tpu_pod_dry_run_runs_an_ablation_and_keeps_the_vm():
  lines = dry_run('tpu_pod.py', '--name=pod', '--project=p', '--zone=z',
                  '--accelerator_type=v5litepod-16', '--runtime_version=v2-alpha-tpuv5-lite',
                  '--source_dir=/src/asc_jax', '--config=configs/quickstart.py', '--workdir=/nfs/a',
                  '--output_dir=out', '--module=asc_jax.ablate', '--keep',
                  "--extra_args=--sweep 'model.norm_lambda=0,0.1' --seeds 3")
  assert len(lines) == 5 and not any('delete' in line for line in lines)
  assert lines[3] == ('gcloud compute tpus tpu-vm ssh pod --worker=all \'--command=cd asc_jax && '
                      'python3 -m asc_jax.ablate --config=configs/quickstart.py --workdir=/nfs/a '
                      '--sweep model.norm_lambda=0,0.1 --seeds 3\' --project=p --zone=z')


def test_multinode_gpu_dry_run_gives_each_host_its_process_id():
  lines = dry_run('multinode_gpu.py', '--hosts=gpu-node-0,gpu-node-1,gpu-node-2', '--port=29500',
                  '--remote_dir=/shared/asc_jax', '--python=/shared/venv/bin/python',
                  '--config=configs/bcresnet.py:mod8', '--workdir=/shared/runs/mod8',
                  '--local_device_ids=0,1')
  expected = [
      f"ssh gpu-node-{i} 'cd /shared/asc_jax && /shared/venv/bin/python -m asc_jax.main "
      "--config=configs/bcresnet.py:mod8 --workdir=/shared/runs/mod8 "
      "--config.distributed.coordinator_address=gpu-node-0:29500 "
      f"--config.distributed.num_processes=3 --config.distributed.process_id={i} "
      "--config.distributed.local_device_ids=0,1' &" for i in range(3)]
  assert lines == expected + ['wait']


def test_launch_scripts_refuse_missing_parameters():
  result = subprocess.run([sys.executable, os.path.join(LAUNCH_DIR, 'tpu_pod.py'), '--dry_run',
                           '--name=pod'], capture_output=True, text=True, timeout=60)
  assert result.returncode != 0 and '--project' in result.stderr
