#!/usr/bin/env python3
"""Trains the PyTorch reference BC-ResNet-Mod on the real-audio benchmark with asc_jax's recipe.

Both frameworks see identical inputs: the log-mels are read from the TFDS dataset that asc_jax's
audio_folder builder writes (asc_jax.data.datasets.prepare with the same experiment config),
exported once per split into an .npz cache beside the prepared dataset. The network is the
PyTorch reference torch_bcresnet_mod.py (BCResNetMod, width k, with or without ResNorm; not part
of this repository: --reference=PATH, or found in a directory on PATH); the
recipe is config.train of the config: SGD (momentum, weight decay added to the gradient of every
parameter, as torch.optim.SGD does), the learning rate of asc_jax.optim.learning_rate_schedule
(linear warm-up from 0 over warmup_epochs, then cosine to 0 at the last step) updated every
step, batches of batch_size in a new seeded order each epoch with the remainder dropped,
cross-entropy, no augmentation. Validation is scored every eval_every_epochs epochs and at the
end; test is scored once, with the final weights (and, reported separately, with the weights of
the best validation epoch). Nothing is selected on test.

Two Python environments: asc_jax's (to read the prepared dataset) and one with torch. Run it
with the torch one and point --asc_python at asc_jax's, or run it in one that has both:

  TORCH_VENV/bin/python benchmarks/real_audio/train_torch_reference.py \
      --config=configs/real_audio.py:plain --seed=0 --asc_python=ASC_VENV/bin/python
  ... --config=configs/real_audio.py:plain_noresnorm --seed=0 ...

Writes benchmarks/results/real_audio_torch_<variant>_seed<seed>.json (per run); the tables over
seeds (both frameworks) come from benchmarks/real_audio/summarize.py.
"""

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
RESULTS = os.path.join(REPO, 'benchmarks', 'results')
REFERENCE_NAME = 'torch_bcresnet_mod.py'


def find_reference(path: str) -> str:
  """`path`, or the reference network file found in a directory on PATH."""
  for candidate in [path] if path else [os.path.join(directory, REFERENCE_NAME) for directory
                                        in os.environ.get('PATH', '').split(os.pathsep) if directory]:
    if os.path.isfile(candidate):
      return candidate
  raise SystemExit(f'no PyTorch reference network: pass --reference=PATH/{REFERENCE_NAME} or put '
                   'its directory on PATH (it is not part of this repository).')
# Device groups of the benchmark (benchmarks/real_audio/prepare.py) and of DCASE reports.
GROUPS = {'a': ('a',), 'seen': ('b', 'c', 's1', 's2', 's3'), 'unseen': ('s4', 's5', 's6')}
SPLITS = ('train', 'validation', 'test')


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--config', default='configs/real_audio.py:plain',
                      help='asc_jax experiment config FILE[:VARIANT] (data, features, model, train).')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--manual_dir', default='', help='overrides config.data.manual_dir.')
  parser.add_argument('--data_dir', default='', help='overrides config.data.data_dir.')
  parser.add_argument('--asc_python', default=os.environ.get('ASC_JAX_PYTHON', ''),
                      help="python of an environment with asc_jax (default: this one).")
  parser.add_argument('--reference', default='',
                      help=f'the PyTorch reference network file; default: {REFERENCE_NAME} on PATH.')
  parser.add_argument('--threads', type=int, default=0, help='torch.set_num_threads; 0 = default.')
  parser.add_argument('--epochs', type=float, default=0, help='overrides config.train.num_epochs.')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='config override, e.g. train.batch_size=32 or model.width=8.')
  parser.add_argument('--out', default='', help='result JSON (default: benchmarks/results/...).')
  return parser.parse_args(argv)


# ------------------------------------------------------------------ features (asc_jax side)


def load_config(spec: str, manual_dir: str = '', data_dir: str = '', overrides=()):
  """The experiment config FILE[:VARIANT] with KEY=VALUE overrides (e.g. train.batch_size=32),
  each cast to the type of the value it replaces (needs asc_jax and ml_collections)."""
  path, _, variant = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location('experiment_config',
                                                       os.path.join(REPO, path))
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(variant) if variant else module.get_config()
  if manual_dir:
    config.data.manual_dir = manual_dir
  if data_dir:
    config.data.data_dir = data_dir
  for override in overrides:
    key, equals, value = override.partition('=')
    *parents, name = key.split('.')
    current = config
    for part in parents:
      current = current.get(part) if hasattr(current, 'get') else None
    if not equals or not hasattr(current, 'get') or name not in current:
      raise SystemExit(f'--set {override!r}: expected KEY=VALUE with an existing config key.')
    kind = type(current[name])
    try:
      current[name] = value.lower() in ('1', 'true') if kind is bool else kind(value)
    except ValueError:
      raise SystemExit(f'--set {override!r}: {value!r} is not a {kind.__name__} '
                       f'like the current value {current[name]!r}.') from None
  return config


def export_features(spec: str, manual_dir: str, data_dir: str, overrides, out: str) -> None:
  """Prepares the dataset with asc_jax (builds it if needed) and writes every split's arrays
  and the config into `out` (.npz). Runs in asc_jax's environment."""
  from asc_jax.data import datasets   # pylint: disable=import-outside-toplevel
  config = load_config(spec, manual_dir, data_dir, overrides)
  dataset = datasets.prepare(config)
  arrays = {'class_names': np.array(dataset.class_names),
            'device_names': np.array(dataset.device_names),
            'prepared_dir': np.array(dataset.prepared_dir)}
  for split, source in dataset.sources.items():
    records = source.__getitems__(list(range(len(source))))
    arrays[f'{split}_logmel'] = np.stack([r['logmel'] for r in records]).astype(np.float32)
    arrays[f'{split}_label'] = np.array([r['label'] for r in records], np.int64)
    arrays[f'{split}_device'] = np.array([r['device'] for r in records])
    arrays[f'{split}_filename'] = np.array([r['filename'] for r in records])
  temporary = out + '.tmp.npz'
  np.savez(temporary, **arrays)
  os.replace(temporary, out)


def print_config(spec: str, manual_dir: str, data_dir: str, overrides) -> None:
  """Prints the config as JSON (runs in asc_jax's environment)."""
  print(load_config(spec, manual_dir, data_dir, overrides).to_json())


def in_asc_env(args, function: str, *extra) -> str:
  """stdout of `function`(config, manual_dir, data_dir, *extra), run where asc_jax imports."""
  call = (args.config, args.manual_dir, args.data_dir, tuple(args.set), *extra)
  python = args.asc_python or sys.executable
  code = ('import sys; sys.path.insert(0, %r); import train_torch_reference as t; t.%s%r'
          % (os.path.dirname(os.path.abspath(__file__)), function, call))
  return subprocess.run([python, '-c', code], check=True, cwd=REPO, capture_output=True,
                        text=True).stdout


def experiment_config(args) -> dict:
  return json.loads(in_asc_env(args, 'print_config').strip().splitlines()[-1])


def load_features(args, config: dict) -> dict:
  """Every split's log-mels, labels and devices, exported from asc_jax's dataset on first use
  into <data_dir>/torch_reference_cache/<hash of the data and features sections>.npz."""
  import hashlib   # pylint: disable=import-outside-toplevel
  key = hashlib.sha256(json.dumps([config['data'], config['features']], sort_keys=True)
                       .encode()).hexdigest()[:12]
  root = os.path.expanduser(config['data']['data_dir'] or os.path.join('~', 'tensorflow_datasets'))
  path = os.path.join(root, 'torch_reference_cache', f'{key}.npz')
  if not os.path.exists(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    print(f'exporting log-mels from asc_jax\'s dataset into {path}', flush=True)
    in_asc_env(args, 'export_features', path)
  with np.load(path) as data:
    return {key: data[key] for key in data.files}


# ------------------------------------------------------------------ training (torch side)


def learning_rate(step: int, peak: float, warmup_steps: int, total_steps: int) -> float:
  """asc_jax.optim.learning_rate_schedule: optax.warmup_cosine_decay_schedule(0, peak, ...)."""
  if step < warmup_steps:
    return peak * step / warmup_steps
  progress = min(step - warmup_steps, total_steps - warmup_steps) / max(1, total_steps -
                                                                          warmup_steps)
  return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def reference_module(path: str):
  spec = importlib.util.spec_from_file_location('torch_bcresnet_mod', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def scores(torch, model, logmel: np.ndarray, batch: int = 256) -> np.ndarray:
  model.eval()
  out = []
  with torch.inference_mode():
    for start in range(0, len(logmel), batch):
      x = torch.from_numpy(logmel[start:start + batch][:, None])
      out.append(model(x).double().numpy())
  model.train()
  return np.concatenate(out)


def metrics(logits: np.ndarray, labels: np.ndarray, devices: np.ndarray) -> dict:
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  correct = log_prob.argmax(axis=1) == labels
  true = np.maximum(log_prob[np.arange(len(labels)), labels], np.log(1e-15))

  def summary(mask):
    return {'accuracy': float(correct[mask].mean()), 'log_loss': float(-true[mask].mean()),
            'count': int(mask.sum())}

  result = summary(np.ones(len(labels), bool))
  result['per_device'] = {d: summary(devices == d) for d in sorted(set(devices.tolist()))}
  result['per_device_group'] = {g: summary(np.isin(devices, members))
                                for g, members in GROUPS.items() if np.isin(devices, members).any()}
  return result


def train(args) -> dict:
  import torch   # pylint: disable=import-outside-toplevel
  import torch.nn.functional as F   # pylint: disable=import-outside-toplevel
  if args.threads:
    torch.set_num_threads(args.threads)
  config = experiment_config(args)
  recipe = argparse.Namespace(**config['train'])
  model_config = argparse.Namespace(**config['model'])
  data = load_features(args, config)
  torch.manual_seed(args.seed)
  args.reference = find_reference(args.reference)
  reference = reference_module(args.reference)
  model = reference.BCResNetMod(width=int(model_config.width), num_classes=len(data['class_names']),
                                lam=float(model_config.norm_lambda),
                                sub_bands=int(model_config.sub_bands),
                                resnorm=model_config.norm == 'resnorm')
  if model_config.norm not in ('resnorm', 'none'):
    raise ValueError(f'the reference network has ResNorm or nothing, not {model_config.norm!r}.')
  parameters = sum(p.numel() for p in model.parameters())
  optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=float(recipe.momentum),
                              weight_decay=float(recipe.weight_decay))
  x_train, y_train = data['train_logmel'], data['train_label']
  batch = int(recipe.batch_size)
  steps_per_epoch = len(x_train) // batch
  epochs = args.epochs or float(recipe.num_epochs)
  total_steps = max(1, int(epochs * steps_per_epoch))
  warmup_steps = min(round(float(recipe.warmup_epochs) * steps_per_epoch), total_steps - 1)
  rng = np.random.default_rng(args.seed)
  history, best = [], None
  step, started = 0, time.time()
  eval_every = max(1, int(recipe.eval_every_epochs))
  num_epochs = math.ceil(total_steps / steps_per_epoch)
  for epoch in range(1, num_epochs + 1):
    order = rng.permutation(len(x_train))
    losses, hits, seen = 0.0, 0, 0
    epoch_start = time.time()
    for index in range(steps_per_epoch):
      if step >= total_steps:
        break
      chosen = np.sort(order[index * batch:(index + 1) * batch])
      x = torch.from_numpy(x_train[chosen][:, None])
      y = torch.from_numpy(y_train[chosen])
      for group in optimizer.param_groups:
        group['lr'] = learning_rate(step, float(recipe.learning_rate), warmup_steps, total_steps)
      optimizer.zero_grad(set_to_none=True)
      logits = model(x)
      loss = F.cross_entropy(logits, y)
      loss.backward()
      optimizer.step()
      step += 1
      losses += loss.item() * len(chosen)
      hits += int((logits.detach().argmax(1) == y).sum())
      seen += len(chosen)
    entry = {'epoch': epoch, 'train_loss': losses / max(1, seen),
             'train_accuracy': hits / max(1, seen), 'epoch_s': round(time.time() - epoch_start, 1)}
    if 'validation_logmel' in data and (epoch % eval_every == 0 or epoch == num_epochs):
      val = metrics(scores(torch, model, data['validation_logmel']), data['validation_label'],
                    data['validation_device'])
      entry.update(validation_accuracy=val['accuracy'], validation_log_loss=val['log_loss'])
      if best is None or val['accuracy'] > best[0]:
        best = (val['accuracy'], epoch, {k: v.detach().clone() for k, v in
                                         model.state_dict().items()})
    history.append(entry)
    print(json.dumps(entry), flush=True)
  train_s = time.time() - started
  test = metrics(scores(torch, model, data['test_logmel']), data['test_label'],
                 data['test_device'])
  result = {'framework': f'torch {torch.__version__}', 'config': args.config, 'seed': args.seed,
            'network': f'BCResNetMod(width={int(model_config.width)}, '
                       f'resnorm={model_config.norm == "resnorm"})',
            'parameters': parameters, 'reference_file': os.path.basename(args.reference),
            'features': str(data['prepared_dir']), 'threads': torch.get_num_threads(),
            'recipe': {'epochs': epochs, 'batch_size': batch, 'steps': total_steps,
                       'warmup_steps': warmup_steps, 'peak_learning_rate': float(recipe.learning_rate),
                       'momentum': float(recipe.momentum), 'weight_decay': float(recipe.weight_decay)},
            'num_examples': {split: int(len(data[f'{split}_label'])) for split in SPLITS
                             if f'{split}_label' in data},
            'train_s': round(train_s, 1), 'history': history,
            'test_final': test, 'code_commit': git_commit()}
  if best is not None:
    model.load_state_dict(best[2])
    result['best_validation_epoch'] = best[1]
    result['best_validation_accuracy'] = best[0]
    result['test_best_validation'] = metrics(scores(torch, model, data['test_logmel']),
                                             data['test_label'], data['test_device'])
  return result


def git_commit() -> str:
  try:
    return subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                          cwd=REPO, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return ''


def variant_of(config: str) -> str:
  return config.partition(':')[2] or 'plain'


def main(argv=None) -> int:
  args = parse_args(argv)
  result = train(args)
  out = args.out or os.path.join(
      RESULTS, f'real_audio_torch_{variant_of(args.config)}_seed{args.seed}.json')
  os.makedirs(os.path.dirname(out), exist_ok=True)
  with open(out, 'w') as file:
    json.dump(result, file, indent=1)
  print(json.dumps({'out': out, 'test_accuracy': result['test_final']['accuracy'],
                    'per_group': {g: v['accuracy'] for g, v in
                                  result['test_final']['per_device_group'].items()}}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
