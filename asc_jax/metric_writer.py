"""Scalar logging of a run: TensorBoard event files (tensorboardX, no TensorFlow) and a JSON-lines
history (logdir/metrics.jsonl) that the plots read back with `read_history`.

Only one process should write: pass `enabled=jax.process_index() == 0`; a disabled writer touches
no file.
"""

import json
import os
from typing import Mapping

import tensorboardX

HISTORY_FILE = 'metrics.jsonl'


def _drop_unfinished_line(path: str) -> None:
  """Cuts a last line a crashed run left without its newline, so appended rows stay valid."""
  if not os.path.exists(path):
    return
  with open(path, 'rb+') as file:
    data = file.read()
    if data and not data.endswith(b'\n'):
      file.truncate(data.rfind(b'\n') + 1)


class MetricWriter:
  """Writes {name: scalar} dicts per step to TensorBoard and to logdir/metrics.jsonl."""

  def __init__(self, logdir: str, enabled: bool = True):
    self.logdir, self.enabled = logdir, enabled
    self._summary = None
    self._history = None
    if enabled:
      os.makedirs(logdir, exist_ok=True)
      self._summary = tensorboardX.SummaryWriter(logdir=logdir, flush_secs=30)
      path = os.path.join(logdir, HISTORY_FILE)
      _drop_unfinished_line(path)
      self._history = open(path, 'a', encoding='utf-8')

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    if self._history is None:
      raise RuntimeError(f'the MetricWriter of {self.logdir} is closed; write before close().')
    values = {name: float(value) for name, value in scalars.items()}
    for name, value in values.items():
      self._summary.add_scalar(name, value, global_step=int(step))
    self._history.write(json.dumps({'step': int(step), **values}) + '\n')
    self._history.flush()

  def flush(self) -> None:
    if self._history is not None:
      self._summary.flush()
      self._history.flush()

  def close(self) -> None:
    if self._history is not None:
      self._summary.close()
      self._history.close()
      self._summary, self._history = None, None


def read_history(logdir: str) -> list[dict]:
  """The JSONL history as one row per step, sorted by step: {'step', <name>: value, ...}.

  Rows of the same step are merged and a later value replaces an earlier one, so the steps a
  resumed run logs again replace those of the interrupted run. A last line cut short by a crash
  is ignored; [] when nothing was logged yet.
  """
  path = os.path.join(logdir, HISTORY_FILE)
  if not os.path.exists(path):
    return []
  with open(path, encoding='utf-8') as file:
    lines = file.read().split('\n')
  by_step = {}
  for number, line in enumerate(lines[:-1], start=1):  # lines[-1] is '' or an unfinished line.
    try:
      row = json.loads(line)
    except json.JSONDecodeError as error:
      raise ValueError(f'{path} line {number} is not valid JSON ({error}); delete that line or the '
                       'file to start the history afresh.') from error
    by_step.setdefault(row['step'], {}).update(row)
  return [by_step[step] for step in sorted(by_step)]
