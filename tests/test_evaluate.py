"""Metrics on hand-made logits whose answers are worked out by hand or by a direct formula."""

import json

import numpy as np
import pytest

from asc_jax import evaluate

CLASSES = ('x', 'y', 'z')
DEVICES = ('a', 'b', 'c', 's1', 's2', 's3', 's4', 's5', 's6')
LABELS = np.array([0, 0, 0, 1, 1, 2])
PREDICTED = np.array([0, 0, 1, 1, 0, 0])   # correct: T T F T F F
DEVICE_INDEX = np.array([0, 0, 1, 3, 6, 6])  # a a b s1 s4 s4


def make_logits(predicted: np.ndarray, seed: int = 0) -> np.ndarray:
  """Random logits whose argmax is `predicted` (winner 2 above every other logit)."""
  logits = np.random.default_rng(seed).normal(size=(len(predicted), len(CLASSES)))
  logits[np.arange(len(predicted)), predicted] = logits.max(axis=1) + 2.0
  return logits


def direct_log_loss(logits: np.ndarray, labels: np.ndarray) -> float:
  probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  return float(-np.mean(np.log(probabilities[np.arange(len(labels)), labels])))


@pytest.fixture
def metrics_and_logits():
  logits = make_logits(PREDICTED)
  return evaluate.compute_metrics(logits, LABELS, DEVICE_INDEX, CLASSES, DEVICES), logits


def test_overall_metrics(metrics_and_logits):
  metrics, logits = metrics_and_logits
  assert metrics['count'] == 6
  assert metrics['accuracy'] == pytest.approx(3 / 6)
  assert metrics['log_loss'] == pytest.approx(direct_log_loss(logits, LABELS), rel=1e-12)
  assert metrics['macro_class_accuracy'] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
  json.dumps(metrics, allow_nan=False)  # JSON-able, with no NaN anywhere.


def test_per_class_and_confusion_matrix(metrics_and_logits):
  metrics, logits = metrics_and_logits
  per_class = metrics['per_class']
  assert [per_class[name]['count'] for name in CLASSES] == [3, 2, 1]
  assert [per_class[name]['accuracy'] for name in CLASSES] == pytest.approx([2 / 3, 1 / 2, 0])
  only_y = LABELS == 1
  assert per_class['y']['log_loss'] == pytest.approx(
      direct_log_loss(logits[only_y], LABELS[only_y]), rel=1e-12)
  confusion = np.array(metrics['confusion_matrix'])
  np.testing.assert_array_equal(confusion, [[2, 1, 0], [1, 1, 0], [1, 0, 0]])
  np.testing.assert_array_equal(confusion.sum(axis=1), [3, 2, 1])
  assert confusion.sum() == 6 and np.trace(confusion) == 3


def test_per_device_and_default_groups(metrics_and_logits):
  metrics, logits = metrics_and_logits
  per_device = metrics['per_device']
  assert list(per_device) == ['a', 'b', 's1', 's4']   # only devices present, in name order
  assert {name: entry['count'] for name, entry in per_device.items()} == {
      'a': 2, 'b': 1, 's1': 1, 's4': 2}
  assert {name: entry['accuracy'] for name, entry in per_device.items()} == {
      'a': 1.0, 'b': 0.0, 's1': 1.0, 's4': 0.0}
  on_a = DEVICE_INDEX == 0
  assert per_device['a']['log_loss'] == pytest.approx(
      direct_log_loss(logits[on_a], LABELS[on_a]), rel=1e-12)
  groups = metrics['per_device_group']
  assert {name: entry['count'] for name, entry in groups.items()} == {
      'real': 3, 'seen': 1, 'unseen': 2}
  assert groups['real']['accuracy'] == pytest.approx(2 / 3)
  assert groups['real']['devices'] == ['a', 'b']
  assert groups['unseen']['accuracy'] == 0.0
  assert sum(entry['count'] for entry in per_device.values()) == metrics['count']


def test_custom_groups_skip_groups_without_examples():
  metrics = evaluate.compute_metrics(make_logits(PREDICTED), LABELS, DEVICE_INDEX, CLASSES,
                                     DEVICES, device_groups={'ab': ('a', 'b'), 'c_only': ('c',)})
  assert list(metrics['per_device_group']) == ['ab']
  assert metrics['per_device_group']['ab']['count'] == 3


def test_device_groups_from_the_config_string():
  assert evaluate.parse_device_groups('') == evaluate.DEFAULT_DEVICE_GROUPS
  assert evaluate.parse_device_groups('a=a; seen = b,c ,s1;unseen=s4') == {
      'a': ('a',), 'seen': ('b', 'c', 's1'), 'unseen': ('s4',)}
  for bad in ('a', 'a=', '=b', 'a=a;a=b'):
    with pytest.raises(ValueError, match='device_groups'):
      evaluate.parse_device_groups(bad)


def test_log_loss_is_stable_and_clipped():
  logits = np.array([[1000.0, 0.0], [0.0, 1000.0], [-1000.0, -1000.0]])
  labels = np.array([0, 0, 1])
  metrics = evaluate.compute_metrics(logits, labels, np.zeros(3, int), ('p', 'q'), ('a',))
  # Example 1: p_true = 1 -> 0; example 2: p_true = e^-1000 clipped to 1e-15; example 3: log 2.
  expected = (0.0 - np.log(evaluate.LOG_LOSS_EPS) + np.log(2.0)) / 3
  assert metrics['log_loss'] == pytest.approx(expected, rel=1e-12)
  np.testing.assert_allclose(evaluate.softmax(logits).sum(axis=1), 1.0)


def test_inputs_that_do_not_match_raise():
  logits = make_logits(PREDICTED)
  with pytest.raises(ValueError, match='3 class names'):
    evaluate.compute_metrics(logits[:, :2], LABELS, DEVICE_INDEX, CLASSES, DEVICES)
  with pytest.raises(ValueError, match='devices hold indices'):
    evaluate.compute_metrics(logits, LABELS, DEVICE_INDEX + 5, CLASSES, DEVICES)
  with pytest.raises(ValueError, match='labels have shape'):
    evaluate.compute_metrics(logits, LABELS[:4], DEVICE_INDEX, CLASSES, DEVICES)
