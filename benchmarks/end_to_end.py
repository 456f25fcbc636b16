#!/usr/bin/env python3
"""End to end: the same recipe trained by asc_jax and by the PyTorch reference, side by side.

Both train the network of --config (BC-ResNet-Mod-k, SGD one-cycle of config.train, no
augmentation) for --epochs on the same prepared log-mels (asc_jax's TFDS dataset; the reference
reads an .npz export of it, held in memory), one run after the other, at every batch size of
--batches. Reported per run: wall time of the whole command (asc_jax: dataset read, compilation,
training, validation, checkpoints, test scoring; the reference: the same minus compilation and
checkpoints, plus reading the .npz), training clips/s, the training time it implies (epochs x
training clips / clips/s) and test accuracy (final weights). asc_jax's clips/s is the median of
the throughput it logs every log_every_steps (the first interval, with compilation, left out);
the reference's is epochs x training clips / its train_s (its validation passes included).
The reference runs once per --torch_malloc setting: glibc as it ships, and with the huge-page
tunable asc_jax sets for itself (asc_jax/host_memory.py), which on some CPUs speeds PyTorch up
too; the ratio is asc_jax over the faster of them. With --rounds=N every batch size is run N
times, the frameworks alternating within each round, and the summary gives each batch size's
median ratio with its range over the rounds: on a shared virtual machine the same run's
throughput can drift by a third within an hour, so a single round is a rough figure.

  python benchmarks/end_to_end.py --config=configs/real_audio.py:plain \
      --manual_dir=DATA/real_audio_benchmark --torch_python=TORCH_VENV/bin/python \
      --reference=PATH/torch_bcresnet_mod.py --epochs=5 --batches=32,64,100 --rounds=3 \
      [--set model.width=8]

Writes benchmarks/results/end_to_end_<label>.json, with the host device split asc_jax trained
on ($ASC_JAX_HOST_DEVICES, or auto; asc_jax/host_devices.py). The two frameworks should have the
machine to themselves: anything else running changes both figures (the machine's load is
recorded).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from asc_jax import host_devices

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_SCRIPT = os.path.join(HERE, 'real_audio', 'train_torch_reference.py')
COLUMNS = ('round', 'framework', 'malloc', 'batch', 'wall_s', 'train_s', 'clips_per_s',
           'test_accuracy', 'speedup_vs_torch')
SUMMARY_COLUMNS = ('batch', 'rounds', 'median', 'min', 'max')


def asc_jax_run(args, batch: int, workdir: str) -> dict:
  overrides = [f'--config.{key}' for key in args.set] + [
      f'--config.train.batch_size={batch}', f'--config.train.num_epochs={args.epochs}',
      f'--config.train.warmup_epochs={0.05 * args.epochs}', '--config.seed=0',
      f'--config.train.eval_every_epochs={args.epochs}', '--config.train.test_checkpoint=final',
      f'--config.data.manual_dir={args.manual_dir}']
  command = [sys.executable, '-m', 'asc_jax.main', f'--config={args.config}',
             f'--workdir={workdir}', *overrides]
  start = time.perf_counter()
  subprocess.run(command, check=True, cwd=harness.ROOT, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
  wall = time.perf_counter() - start
  with open(os.path.join(workdir, 'eval_test.json')) as file:
    test = json.load(file)
  with open(os.path.join(workdir, 'dataset_info.json')) as file:
    train_clips = json.load(file)['num_examples']['train']
  clips_per_s = training_clips_per_s(workdir)
  return dict(framework='asc_jax', malloc='asc_jax', batch=batch, wall_s=round(wall, 1),
              train_s=round(args.epochs * train_clips / clips_per_s, 1),
              clips_per_s=round(clips_per_s, 1), test_accuracy=round(test['accuracy'], 4))


def training_clips_per_s(workdir: str) -> float:
  """Median of the training throughput asc_jax logs every log_every_steps, the first interval
  (which holds the compilation) left out."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as file:
    rates = [json.loads(line)['train/clips_per_s'] for line in file if 'train/clips_per_s' in line]
  if len(rates) < 2:
    raise SystemExit(f'{workdir}/metrics.jsonl holds fewer than two throughput rows.')
  return statistics.median(rates[1:])


def torch_run(args, batch: int, out: str, malloc: str) -> dict:
  command = [args.torch_python, TORCH_SCRIPT, f'--config={args.config}', '--seed=0',
             f'--asc_python={sys.executable}', f'--manual_dir={args.manual_dir}',
             f'--reference={args.reference}', f'--epochs={args.epochs}', f'--out={out}',
             f'--threads={args.torch_threads}', f'--set=train.batch_size={batch}',
             f'--set=train.warmup_epochs={0.05 * args.epochs}',
             f'--set=train.eval_every_epochs={int(args.epochs)}',
             *(f'--set={key}' for key in args.set)]
  start = time.perf_counter()
  subprocess.run(command, check=True, cwd=harness.ROOT, stdout=subprocess.DEVNULL,
                 env=harness.torch_environment(malloc))
  wall = time.perf_counter() - start
  with open(out) as file:
    result = json.load(file)
  return dict(framework=result['framework'], malloc=malloc, batch=batch, wall_s=round(wall, 1),
              train_s=result['train_s'],
              clips_per_s=round(
                  args.epochs * result['num_examples']['train'] / result['train_s'], 1),
              test_accuracy=round(result['test_final']['accuracy'], 4))


def ratio_summary(rows: list[dict]) -> list[dict]:
  """Per batch size: the median, minimum and maximum of the rounds' asc_jax / faster-PyTorch
  ratios (each round's rows carry their round's ratio)."""
  ratios = {}
  for row in rows:
    if row['framework'] == 'asc_jax':
      ratios.setdefault(row['batch'], []).append(row['speedup_vs_torch'])
  return [dict(batch=batch, rounds=len(values), median=round(statistics.median(values), 2),
               min=min(values), max=max(values)) for batch, values in ratios.items()]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='configs/real_audio.py:plain')
  parser.add_argument('--manual_dir', required=True, help='the prepared benchmark directory.')
  parser.add_argument('--torch_python', required=True, help='python of an environment with torch.')
  parser.add_argument('--reference', required=True, help='torch_bcresnet_mod.py.')
  parser.add_argument('--epochs', type=int, default=5)
  parser.add_argument('--batches', default='32,64,100')
  parser.add_argument('--rounds', type=int, default=1,
                      help='runs of every batch size, the frameworks alternating in each.')
  parser.add_argument('--torch_threads', type=int, default=0, help='0 = torch default (all cores).')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='config override for both, e.g. model.width=8.')
  parser.add_argument('--torch_malloc', default=','.join(harness.MALLOC_SETTINGS),
                      help='allocator settings the reference runs under (shipped, asc_jax).')
  parser.add_argument('--label', default='', help='results name (default: from the config).')
  args = parser.parse_args(argv)
  mallocs = args.torch_malloc.split(',')
  if not mallocs or set(mallocs) - set(harness.MALLOC_SETTINGS):
    parser.error(f'--torch_malloc={args.torch_malloc!r}: choose from '
                 f'{", ".join(harness.MALLOC_SETTINGS)}.')
  if args.rounds < 1:
    parser.error(f'--rounds={args.rounds}: give 1 or more.')
  rows = []
  with tempfile.TemporaryDirectory() as scratch:
    for round_index in range(args.rounds):
      for batch in map(int, args.batches.split(',')):
        run_dir = os.path.join(scratch, f'round{round_index}_batch{batch}')
        batch_rows = [asc_jax_run(args, batch, f'{run_dir}_asc')]
        batch_rows += [torch_run(args, batch, f'{run_dir}_torch_{malloc}.json', malloc)
                       for malloc in mallocs]
        ratio = batch_rows[0]['clips_per_s'] / max(row['clips_per_s'] for row in batch_rows[1:])
        for row in batch_rows:
          row.update({'round': round_index, 'speedup_vs_torch': round(ratio, 2)})
        harness.print_table(batch_rows, COLUMNS)
        rows += batch_rows
  print()
  harness.print_table(rows, COLUMNS)
  summary = ratio_summary(rows)
  print('\nasc_jax / faster PyTorch, training clips/s, over rounds:')
  harness.print_table(summary, SUMMARY_COLUMNS)
  label = args.label or (args.config.partition(':')[2] or 'plain') + ''.join(
      '_' + key.replace('=', '') for key in args.set)
  harness.write_results(f'end_to_end_{label}', dict(
      config=args.config, overrides=args.set, epochs=args.epochs, rounds=args.rounds, runs=rows,
      ratio=summary, torch_malloc=mallocs,
      asc_jax_host_devices=os.environ.get(host_devices.COUNT_VARIABLE, 'auto: min(cores, 2)')))
  return 0


if __name__ == '__main__':
  sys.exit(main())
