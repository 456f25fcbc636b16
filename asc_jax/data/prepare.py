"""Builds the dataset a config names and prints its examples per split and device.

  python -m asc_jax.data.prepare --config=configs/quickstart.py
  python -m asc_jax.data.prepare --config=configs/bcresnet.py \
      --config.data.manual_dir=/data/TAU-urban-acoustic-scenes-2020-mobile-development

Training builds the dataset on first use too; this command only does it ahead of time.
"""

from absl import app

from asc_jax import configs
from asc_jax import console
from asc_jax.data import datasets

_CONFIG = configs.define_config_flag()


def count_table(dataset: datasets.PreparedDataset) -> str:
  """Examples per split (rows) and device (columns), with totals."""
  devices = [device for device in dataset.device_names
             if any(device in counts for counts in dataset.device_counts.values())]
  width = max(7, *(len(device) + 1 for device in devices))
  first = max(7, *(len(split) + 1 for split in dataset.device_counts))
  lines = ['split'.ljust(first) + ''.join(device.rjust(width) for device in devices) +
           'total'.rjust(8)]
  for split, counts in dataset.device_counts.items():
    lines.append(split.ljust(first) + ''.join(str(counts.get(device, 0)).rjust(width)
                                          for device in devices) +
                 str(dataset.num_examples[split]).rjust(8))
  return '\n'.join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments {argv[1:]}; use --config and --config.key=value.')
  console.setup()
  config = _CONFIG.value
  if config is None:
    raise app.UsageError('Pass --config=configs/FILE.py (for example configs/quickstart.py).')
  dataset = datasets.prepare(config)
  print(f'{config.data.name}: {dataset.prepared_dir}')
  print(f'{len(dataset.class_names)} classes, input shape {dataset.input_shape}')
  print(count_table(dataset))


if __name__ == '__main__':
  app.run(main)
