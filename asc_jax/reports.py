"""Report files of an evaluation: the eval JSON, the DCASE-style predictions CSV, PNG plots
(confusion matrix, per-device accuracy, training curves) and the console table.

Every file is written atomically (asc_jax.fileio). Plots use matplotlib's Figure API with the Agg
canvas, so no GUI backend and no pyplot global state is involved.
"""

import csv
import io
import os
from typing import Mapping, Sequence

import numpy as np
from matplotlib import figure as mpl_figure
from matplotlib import patches

from asc_jax import fileio

# Panels of the training-curve plot: title and the history keys drawn in it, where present.
CURVE_PANELS = (
    ('loss', ('train/loss', 'validation/log_loss')),
    ('accuracy', ('train/accuracy', 'validation/accuracy')),
    ('learning rate', ('train/learning_rate', 'learning_rate')),
)


def eval_report_path(directory: str, tag: str = 'test') -> str:
  return os.path.join(directory, f'eval_{tag}.json')


def write_eval_report(directory: str, metrics: Mapping, *, step: int, tag: str = 'test',
                      checkpoint: str = '') -> str:
  """Writes {'step', 'tag', 'split', 'checkpoint', **metrics} to directory/eval_<tag>.json.

  `checkpoint` says which checkpoint was scored ('final', 'latest', 'best'); returns the path.
  """
  path = eval_report_path(directory, tag)
  fileio.atomic_write_json(path, {'step': int(step), 'tag': tag, 'split': tag,
                                  'checkpoint': checkpoint, **metrics})
  return path


def write_split_reports(directory: str, metrics: Mapping, *, filenames: Sequence[str],
                        probabilities: np.ndarray, class_names: Sequence[str], step: int,
                        tag: str, checkpoint: str) -> None:
  """Every report of one scored split: eval_<tag>.json, predictions_<tag>.csv (DCASE style),
  confusion_<tag>.png and accuracy_per_device_<tag>.png."""
  write_eval_report(directory, metrics, step=step, tag=tag, checkpoint=checkpoint)
  write_predictions_csv(os.path.join(directory, f'predictions_{tag}.csv'), filenames,
                        probabilities, class_names)
  plot_confusion_matrix(os.path.join(directory, f'confusion_{tag}.png'), metrics, class_names)
  plot_per_device_accuracy(os.path.join(directory, f'accuracy_per_device_{tag}.png'), metrics)


def write_predictions_csv(path: str, filenames: Sequence[str], probabilities: np.ndarray,
                          class_names: Sequence[str]) -> None:
  """Tab-separated `filename, scene_label, <one probability column per class>`; label = argmax.

  Filenames may be str or bytes (as TFDS returns them).
  """
  probabilities = np.asarray(probabilities)
  if probabilities.shape != (len(filenames), len(class_names)):
    raise ValueError(f'probabilities have shape {probabilities.shape}; expected '
                     f'({len(filenames)}, {len(class_names)}) for {path}.')
  text = io.StringIO()
  writer = csv.writer(text, delimiter='\t', lineterminator='\n')
  writer.writerow(['filename', 'scene_label', *class_names])
  for filename, row in zip(filenames, probabilities):
    label = class_names[int(np.argmax(row))]
    writer.writerow([os.fsdecode(filename), label, *(f'{p:.6f}' for p in row)])
  fileio.atomic_write_text(path, text.getvalue())


def _save_figure(path: str, figure: mpl_figure.Figure) -> None:
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=120, bbox_inches='tight')
  fileio.atomic_write_bytes(path, buffer.getvalue())


def plot_confusion_matrix(path: str, metrics: Mapping, class_names: Sequence[str]) -> None:
  """Row-normalised confusion matrix (true rows, predicted columns) with the counts written in."""
  counts = np.asarray(metrics['confusion_matrix'])
  fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
  size = 2.0 + 0.6 * len(class_names)
  figure = mpl_figure.Figure(figsize=(size + 1.5, size))
  axes = figure.add_subplot()
  image = axes.imshow(fractions, cmap='Blues', vmin=0.0, vmax=1.0)
  figure.colorbar(image, ax=axes, label='fraction of the true class')
  for (row, column), count in np.ndenumerate(counts):
    axes.text(column, row, str(count), ha='center', va='center', fontsize=7,
              color='white' if fractions[row, column] > 0.5 else 'black')
  ticks = np.arange(len(class_names))
  axes.set_xticks(ticks, class_names, rotation=45, ha='right')
  axes.set_yticks(ticks, class_names)
  axes.set_xlabel('predicted')
  axes.set_ylabel('true')
  axes.set_title(f'confusion matrix (accuracy {100 * metrics["accuracy"]:.1f} %)')
  _save_figure(path, figure)


def plot_per_device_accuracy(path: str, metrics: Mapping) -> None:
  """Accuracy per recording device as bars, coloured by device group, with the overall level."""
  devices = list(metrics['per_device'])
  group_of = {device: group for group, entry in metrics['per_device_group'].items()
              for device in entry['devices']}
  groups = list(dict.fromkeys(group_of.get(device, 'other') for device in devices))
  colours = {group: f'C{index}' for index, group in enumerate(groups)}
  figure = mpl_figure.Figure(figsize=(1.5 + 0.6 * len(devices), 4))
  axes = figure.add_subplot()
  accuracies = [100 * metrics['per_device'][device]['accuracy'] for device in devices]
  axes.bar(devices, accuracies, color=[colours[group_of.get(d, 'other')] for d in devices])
  overall = axes.axhline(100 * metrics['accuracy'], color='black', linestyle='--')
  axes.set_ylim(0, 100)
  axes.set_ylabel('accuracy (%)')
  axes.set_xlabel('device')
  handles = [patches.Patch(color=colour, label=group) for group, colour in colours.items()]
  axes.legend(handles=[*handles, overall], labels=[*colours, 'overall'], loc='upper left',
              bbox_to_anchor=(1.01, 1.0), fontsize=8)
  _save_figure(path, figure)


def plot_training_curves(path: str, history_rows: Sequence[Mapping]) -> None:
  """Loss, accuracy and learning rate against step, from metric_writer.read_history rows."""
  figure = mpl_figure.Figure(figsize=(5 * len(CURVE_PANELS), 4))
  for index, (title, keys) in enumerate(CURVE_PANELS):
    axes = figure.add_subplot(1, len(CURVE_PANELS), index + 1)
    for key in keys:
      points = [(row['step'], row[key]) for row in history_rows if key in row]
      if points:
        steps, values = zip(*points)
        axes.plot(steps, values, marker='.' if len(points) < 30 else None, label=key)
    axes.set_title(title)
    axes.set_xlabel('step')
    if axes.lines:
      axes.legend(fontsize=8)
  _save_figure(path, figure)


def _table_sections(metrics: Mapping) -> list[list[tuple[str, Mapping]]]:
  """Rows of the console table in blocks: overall, device groups, devices, classes."""
  sections = [[('overall', metrics)]]
  for key, prefix in (('per_device_group', 'group '), ('per_device', 'device '), ('per_class', '')):
    sections.append([(prefix + name, entry) for name, entry in metrics[key].items()])
  return [rows for rows in sections if rows]


def format_metrics_table(metrics: Mapping) -> str:
  """A fixed-width console table: overall, per device group, per device, per class."""
  sections = _table_sections(metrics)
  width = max(len(name) for rows in sections for name, _ in rows)
  header = f'{"":<{width}}  {"accuracy":>9}  {"log loss":>8}  {"count":>6}'
  lines = [header]
  for rows in sections:
    lines.append('-' * len(header))
    lines.extend(f'{name:<{width}}  {100 * entry["accuracy"]:>8.2f}%  {entry["log_loss"]:>8.4f}  '
                 f'{entry["count"]:>6d}' for name, entry in rows)
  lines.append('-' * len(header))
  lines.append(f'macro class-wise accuracy: {100 * metrics["macro_class_accuracy"]:.2f}%')
  return '\n'.join(lines)
