"""benchmarks/accelerator.py runs asc_jax's real data-parallel train step on forced CPU devices."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_accelerator_benchmark_on_two_forced_cpu_devices(tmp_path):
  out = tmp_path / 'accelerator.json'
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu',
         'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  subprocess.run([sys.executable, os.path.join(REPO, 'benchmarks', 'accelerator.py'),
                  '--variant=mod1', '--mels=32', '--frames=33', '--batch=3', '--steps=2',
                  '--dtypes=float32,bfloat16', f'--out={out}'], check=True, env=env, cwd=REPO,
                 capture_output=True)
  result = json.loads(out.read_text())
  runs = result['results']['runs']
  assert [(run['conv_impl'], run['dtype']) for run in runs] == [
      ('fast', 'float32'), ('lax', 'float32'), ('fast', 'bfloat16'), ('lax', 'bfloat16')]
  for run in runs:
    assert run['devices'] == 2 and run['batch'] == 4   # 3 rounded up to the device count
    assert run['clips_per_s'] > 0 and run['median_step_s'] > 0
    assert run['mfu'] is None                           # no peak is known for a CPU
    # Forward + backward of 4 clips is about 3 x 2 x MACs x 4 FLOPs; XLA counts its own ops.
    assert 0.5 < run['step_flops'] / (6 * run['forward_macs_per_clip'] * 4) < 4
    assert run['achieved_gflops'] == pytest.approx(
        run['step_flops'] / 1e9 / run['median_step_s'], rel=0.01, abs=1e-3)
