"""Classification metrics of scored examples (pure numpy): overall, per device, per device group,
per class, and the confusion matrix, as one JSON-able dict.

Layout of the dict returned by `compute_metrics`:
  count, accuracy, log_loss, macro_class_accuracy        over every example
  per_device[name] / per_device_group[name] / per_class[name] = {accuracy, log_loss, count}
                                                         (only for devices, groups, classes present;
                                                          groups also list their present devices)
  confusion_matrix                                       [true class][predicted class] counts
  class_names, device_names
"""

from typing import Mapping, Optional, Sequence

import numpy as np

# Probabilities are clipped to [LOG_LOSS_EPS, 1] before the log, as sklearn's log_loss long did.
LOG_LOSS_EPS = 1e-15

# DCASE 2020/2021 Task 1A reporting groups (docs/method.md section 5): real, seen simulated, unseen simulated.
DEFAULT_DEVICE_GROUPS = {
    'real': ('a', 'b', 'c'),
    'seen': ('s1', 's2', 's3'),
    'unseen': ('s4', 's5', 's6'),
}


def parse_device_groups(spec: str) -> dict:
  """'name=dev,dev;name=dev' -> {name: (dev, ...)}; '' -> DEFAULT_DEVICE_GROUPS."""
  if not spec.strip():
    return dict(DEFAULT_DEVICE_GROUPS)
  groups = {}
  for part in spec.split(';'):
    name, equals, members = part.partition('=')
    devices = tuple(device.strip() for device in members.split(',') if device.strip())
    if not equals or not name.strip() or not devices or name.strip() in groups:
      raise ValueError(f'config.data.device_groups={spec!r}: {part!r} is not "name=device,device" '
                       'with a new name; write e.g. "a=a;seen=b,c,s1;unseen=s4,s5".')
    groups[name.strip()] = devices
  return groups


def log_softmax(logits: np.ndarray) -> np.ndarray:
  """log p of each class via log-sum-exp, stable for any logit magnitude; float64."""
  logits = np.asarray(logits, dtype=np.float64)
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
  return np.exp(log_softmax(logits))


def _summary(correct: np.ndarray, true_log_prob: np.ndarray) -> dict:
  """Accuracy, log loss and count of a subset (given as its per-example values)."""
  clipped = np.maximum(true_log_prob, np.log(LOG_LOSS_EPS))
  return {'accuracy': float(correct.mean()), 'log_loss': float(-clipped.mean()),
          'count': int(correct.size)}


def _check_inputs(logits: np.ndarray, labels: np.ndarray, devices: np.ndarray,
                  class_names: Sequence[str], device_names: Sequence[str]) -> None:
  if logits.ndim != 2 or logits.shape[1] != len(class_names):
    raise ValueError(f'logits have shape {logits.shape}; expected [N, {len(class_names)}] for the '
                     f'{len(class_names)} class names.')
  if logits.shape[0] == 0:
    raise ValueError('no examples to evaluate: the split is empty.')
  for name, values, size in (('labels', labels, len(class_names)),
                             ('devices', devices, len(device_names))):
    if values.shape != (logits.shape[0],):
      raise ValueError(f'{name} have shape {values.shape}; expected ({logits.shape[0]},).')
    if values.min() < 0 or values.max() >= size:
      raise ValueError(f'{name} hold indices outside [0, {size}): {values.min()}..{values.max()}.')


def compute_metrics(logits: np.ndarray, labels: np.ndarray, devices: np.ndarray,
                    class_names: Sequence[str], device_names: Sequence[str],
                    device_groups: Optional[Mapping[str, Sequence[str]]] = None) -> dict:
  """The metrics of the module docstring for logits [N, K], labels [N], devices [N] (indices)."""
  logits = np.asarray(logits)
  labels, devices = np.asarray(labels, dtype=np.int64), np.asarray(devices, dtype=np.int64)
  _check_inputs(logits, labels, devices, class_names, device_names)
  groups = DEFAULT_DEVICE_GROUPS if device_groups is None else device_groups
  predicted = logits.argmax(axis=-1)
  correct = predicted == labels
  true_log_prob = np.take_along_axis(log_softmax(logits), labels[:, None], axis=-1)[:, 0]

  def summary_where(mask: np.ndarray) -> dict:
    return _summary(correct[mask], true_log_prob[mask])

  per_device = {name: summary_where(devices == index)
                for index, name in enumerate(device_names) if np.any(devices == index)}
  per_group = {}
  for group, members in groups.items():
    present = [name for name in members if name in per_device]
    if present:
      indices = [list(device_names).index(name) for name in present]
      per_group[group] = {**summary_where(np.isin(devices, indices)), 'devices': present}
  per_class = {name: summary_where(labels == index)
               for index, name in enumerate(class_names) if np.any(labels == index)}
  confusion = np.zeros((len(class_names), len(class_names)), dtype=np.int64)
  np.add.at(confusion, (labels, predicted), 1)
  return {
      **_summary(correct, true_log_prob),
      'macro_class_accuracy': float(np.mean([c['accuracy'] for c in per_class.values()])),
      'per_device': per_device,
      'per_device_group': per_group,
      'per_class': per_class,
      'confusion_matrix': confusion.tolist(),
      'class_names': list(class_names),
      'device_names': list(device_names),
  }
