"""The paper recipe's training step on an accelerator: step time, clips/s, FLOP/s, MFU, memory.

BC-ResNet-Mod (configs/bcresnet.py variant, default mod8) on random [n_mels, frames] log-mels
(default 256 x 431, 10 s at 44.1 kHz), data-parallel over every local device with the global
batch of --batch (rounded up to a multiple of the device count), in each of the `conv_impl`
forms and compute dtypes asked for. asc_jax's real train step (builder.compile_task: the optax
chain of config.train, state donated). FLOPs per step come from XLA's cost analysis of the
compiled step (what the compiler counts; the forward MACs per clip of asc_jax.complexity are
listed beside it: a training step is about 3 x 2 x MACs x batch FLOPs); MFU = achieved FLOP/s /
(devices x the chip's peak for the compute dtype, PEAK_TFLOPS below, dense, no sparsity). Peak memory is
the device allocator's peak_bytes_in_use where the backend reports it. When torch with CUDA is
importable, the PyTorch reference network (--reference) is timed on the same GPU too.

  python benchmarks/accelerator.py                         # on the machine's accelerator
  python benchmarks/accelerator.py --variant=mod1 --mels=32 --frames=33 --batch=3 --steps=2
      # (what tests/test_accelerator_benchmark.py runs on forced CPU devices)

Writes benchmarks/results/accelerator_<device kind>.json.
"""

import importlib.util
import os
import re
import statistics
import time

from absl import flags
import jax

import harness

from asc_jax import complexity
from asc_jax import models

_VARIANT = flags.DEFINE_string('variant', 'mod8', 'configs/bcresnet.py variant.')
_MELS = flags.DEFINE_integer('mels', 256, 'Mel bins per clip.')
_FRAMES = flags.DEFINE_integer('frames', 431, 'Frames per clip.')
_BATCH = flags.DEFINE_integer('batch', 128, 'Global batch (the paper: 100 or more).')
_CONV_IMPLS = flags.DEFINE_list('conv_impls', ['fast', 'lax'], 'Convolution forms.')
_DTYPES = flags.DEFINE_list('dtypes', ['float32', 'bfloat16'], 'Compute dtypes.')
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed steps per combination.')
_REFERENCE = flags.DEFINE_string('reference', '', 'torch_bcresnet_mod.py (timed when torch has CUDA).')
_OUT = flags.DEFINE_string('out', '', 'Result JSON (default benchmarks/results/accelerator_<kind>.json).')

# Dense peak TFLOP/s per chip by compute dtype (vendor data sheets; float32 = the non-tensor-core
# FP32 rate on NVIDIA GPUs, TF32 is not used by default in JAX for float32 convolutions).
PEAK_TFLOPS = {
    'H200': {'bfloat16': 989.0, 'float32': 67.0},
    'H100': {'bfloat16': 989.0, 'float32': 67.0},
    'A100': {'bfloat16': 312.0, 'float32': 19.5},
    'L4': {'bfloat16': 121.0, 'float32': 30.3},
    'TPU v4': {'bfloat16': 275.0, 'float32': 275.0},
    'TPU v5 lite': {'bfloat16': 197.0, 'float32': 197.0},
    'TPU v5p': {'bfloat16': 459.0, 'float32': 459.0},
    'TPU v6 lite': {'bfloat16': 918.0, 'float32': 918.0},
}


def peak_tflops(device_kind: str, dtype: str):
  """The chip's peak for `dtype` from PEAK_TFLOPS (longest matching name), or None."""
  names = [name for name in PEAK_TFLOPS if name.lower() in device_kind.lower()]
  return PEAK_TFLOPS[max(names, key=len)][dtype] if names else None


def compiled_step(run, state, batch, key):
  """(the compiled train step, its FLOPs from XLA's cost analysis, over all devices)."""
  compiled = run.train_step.lower(state, batch, key).compile()
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  return compiled, float((analysis or {}).get('flops', 0.0))


def peak_memory_bytes(devices):
  stats = [device.memory_stats() or {} for device in devices]
  peaks = [s['peak_bytes_in_use'] for s in stats if 'peak_bytes_in_use' in s]
  return max(peaks) if peaks else None


def time_asc_jax(conv_impl: str, dtype: str, batch: int) -> dict:
  config = harness.experiment_config(_VARIANT.value, dtype=dtype, conv_impl=conv_impl)
  config.features.n_mels = _MELS.value
  config.train.batch_size = batch
  devices = jax.local_devices()
  run = harness.compiled_run(config, _FRAMES.value, devices)
  state = run.init(jax.random.key(0))
  inputs = run.global_batch(harness.random_batch(config, batch, _FRAMES.value))
  key = run.base_key(0)
  start = time.perf_counter()
  train_step, flops = compiled_step(run, state, inputs, key)
  state, metrics = train_step(state, inputs, key)
  jax.block_until_ready(metrics)
  first = time.perf_counter() - start
  times = []
  for _ in range(_STEPS.value):
    start = time.perf_counter()
    state, metrics = train_step(state, inputs, key)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  step_s = statistics.median(times)
  peak = peak_tflops(devices[0].device_kind, dtype)
  shape = (_MELS.value, _FRAMES.value)
  macs = complexity.measure(complexity.abstract_variables(models.build_model(config.model), shape),
                            config.model, shape)['macs']
  achieved = flops / step_s
  return dict(framework='asc_jax', conv_impl=conv_impl, dtype=dtype, batch=batch,
              devices=len(devices), compile_and_first_call_s=round(first, 2), median_step_s=round(step_s, 5),
              min_step_s=round(min(times), 5), clips_per_s=round(batch / step_s, 1),
              step_flops=int(flops), forward_macs_per_clip=int(macs),
              achieved_gflops=round(achieved / 1e9, 3),
              mfu=round(achieved / (peak * 1e12 * len(devices)), 4) if peak else None,
              peak_memory_mib=_mib(peak_memory_bytes(devices)))


def _mib(value):
  return None if value is None else round(value / 2**20, 1)


def time_torch_reference(batch: int):
  """The PyTorch reference's train step (SGD momentum, cross-entropy) on CUDA, or None."""
  if not _REFERENCE.value or importlib.util.find_spec('torch') is None:
    return None
  import torch   # pylint: disable=import-outside-toplevel
  if not torch.cuda.is_available():
    return None
  spec = importlib.util.spec_from_file_location('torch_bcresnet_mod', _REFERENCE.value)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  width = int(re.sub(r'\D', '', _VARIANT.value) or 8)
  model = module.BCResNetMod(width=width, num_classes=10).cuda()
  optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
  x = torch.randn(batch, 1, _MELS.value, _FRAMES.value, device='cuda')
  y = torch.randint(0, 10, (batch,), device='cuda')
  torch.cuda.reset_peak_memory_stats()

  def step():
    optimizer.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    torch.cuda.synchronize()
  step()
  times = []
  for _ in range(_STEPS.value):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  step_s = statistics.median(times)
  return dict(framework=f'torch {torch.__version__}', conv_impl='cudnn', dtype='float32',
              batch=batch, devices=1, median_step_s=round(step_s, 5),
              clips_per_s=round(batch / step_s, 1),
              peak_memory_mib=_mib(torch.cuda.max_memory_allocated()))


def main(argv):
  del argv
  count = jax.local_device_count()
  batch = -(-_BATCH.value // count) * count
  rows = []
  for dtype in _DTYPES.value:
    for conv_impl in _CONV_IMPLS.value:
      rows.append(time_asc_jax(conv_impl, dtype, batch))
      harness.print_table(rows[-1:], list(rows[-1]))
  reference = time_torch_reference(batch)
  if reference:
    rows.append(reference)
  print()
  harness.print_table(rows, list(rows[0]))
  kind = re.sub(r'[^A-Za-z0-9]+', '_', jax.devices()[0].device_kind).strip('_').lower()
  name = os.path.splitext(os.path.basename(_OUT.value))[0] if _OUT.value else f'accelerator_{kind}'
  payload = dict(variant=_VARIANT.value, input=f'{_MELS.value}x{_FRAMES.value}', runs=rows)
  if _OUT.value:
    harness.write_json(_OUT.value, payload)
  else:
    harness.write_results(name, payload)


if __name__ == '__main__':
  harness.run(main)
