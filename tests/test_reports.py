"""Report files read back: eval JSON, predictions CSV, PNG plots, and the console table."""

import csv
import json
import os

import numpy as np
import pytest
from matplotlib import image as mpl_image

from asc_jax import evaluate
from asc_jax import reports

CLASSES = ('airport', 'bus', 'park')
DEVICES = ('a', 'b', 'c', 's1', 's2', 's3', 's4', 's5', 's6')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def metrics():
  rng = np.random.default_rng(0)
  labels = np.arange(90) % 3
  logits = rng.normal(size=(90, 3))
  logits[np.arange(90), labels] += 1.5
  return evaluate.compute_metrics(logits, labels, np.arange(90) // 10, CLASSES, DEVICES)


def assert_valid_png(path: str, min_pixels: int = 200) -> None:
  with open(path, 'rb') as file:
    assert file.read(8) == PNG_SIGNATURE
  assert os.path.getsize(path) > 5000
  pixels = mpl_image.imread(path)
  assert pixels.shape[0] >= min_pixels and pixels.shape[1] >= min_pixels
  assert pixels[..., :3].std() > 0.05   # not a blank image
  assert not [name for name in os.listdir(os.path.dirname(path)) if name.startswith('.tmp')]


def test_eval_report_round_trip(tmp_path, metrics):
  path = reports.write_eval_report(str(tmp_path), metrics, step=120, tag='test')
  assert path == str(tmp_path / 'eval_test.json')
  loaded = json.loads((tmp_path / 'eval_test.json').read_text())
  assert loaded['step'] == 120 and loaded['tag'] == 'test'
  assert loaded['accuracy'] == metrics['accuracy']
  assert loaded['per_device']['s6'] == metrics['per_device']['s6']
  assert loaded['confusion_matrix'] == metrics['confusion_matrix']


def test_predictions_csv_round_trip(tmp_path):
  filenames = ['audio/bus-lyon-1-1-a.wav', 'audio/park-paris-2-3-s4.wav']
  probabilities = np.array([[0.1, 0.7, 0.2], [0.25, 0.25, 0.5]])
  path = str(tmp_path / 'predictions.csv')
  reports.write_predictions_csv(path, [filenames[0], filenames[1].encode()], probabilities, CLASSES)
  with open(path, newline='', encoding='utf-8') as file:
    rows = list(csv.reader(file, delimiter='\t'))
  assert rows[0] == ['filename', 'scene_label', 'airport', 'bus', 'park']
  assert [row[:2] for row in rows[1:]] == [[filenames[0], 'bus'], [filenames[1], 'park']]
  np.testing.assert_allclose([[float(value) for value in row[2:]] for row in rows[1:]],
                             probabilities, atol=1e-6)
  with pytest.raises(ValueError, match='expected \\(2, 3\\)'):
    reports.write_predictions_csv(path, filenames, probabilities[:, :2], CLASSES)


def test_plots_are_valid_pngs(tmp_path, metrics):
  reports.plot_confusion_matrix(str(tmp_path / 'confusion.png'), metrics, CLASSES)
  reports.plot_per_device_accuracy(str(tmp_path / 'devices.png'), metrics)
  history = [{'step': step, 'train/loss': 2.0 / step, 'train/accuracy': 1 - 1.0 / step,
              'train/learning_rate': 0.1} for step in range(1, 40)]
  history += [{'step': 20, 'test/accuracy': 0.6, 'test/log_loss': 1.1}]
  reports.plot_training_curves(str(tmp_path / 'curves.png'), history)
  for name in ('confusion.png', 'devices.png', 'curves.png'):
    assert_valid_png(str(tmp_path / name))


def test_console_table_holds_the_figures(metrics):
  table = reports.format_metrics_table(metrics)
  lines = table.splitlines()
  overall = next(line for line in lines if line.startswith('overall'))
  assert f'{100 * metrics["accuracy"]:.2f}%' in overall
  assert f'{metrics["log_loss"]:.4f}' in overall and overall.endswith(' 90')
  for group in ('real', 'seen', 'unseen'):
    line = next(line for line in lines if line.startswith(f'group {group} '))
    assert f'{100 * metrics["per_device_group"][group]["accuracy"]:.2f}%' in line
  for device in DEVICES:
    line = next(line for line in lines if line.startswith(f'device {device} '))
    assert f'{metrics["per_device"][device]["log_loss"]:.4f}' in line and line.endswith(' 10')
  for name in CLASSES:
    assert any(line.startswith(name) and line.endswith(' 30') for line in lines)
  assert f'{100 * metrics["macro_class_accuracy"]:.2f}%' in lines[-1]
