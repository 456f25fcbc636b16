"""MetricWriter: the JSONL history and the TensorBoard event files read back."""

import glob
import os
import struct

import pytest
from tensorboardX.proto import event_pb2

from asc_jax import metric_writer


def read_event_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value), ...]} from the TFRecord-framed event files of `logdir`."""
  scalars = {}
  for path in sorted(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))):
    with open(path, 'rb') as file:
      data = file.read()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack('<Q', data[offset:offset + 8])
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 12 + length + 4   # length, its CRC, the record, its CRC
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


def test_scalars_go_to_jsonl_and_tensorboard(tmp_path):
  writer = metric_writer.MetricWriter(str(tmp_path))
  writer.write_scalars(1, {'train/loss': 2.5, 'train/accuracy': 0.25})
  writer.write_scalars(2, {'train/loss': 1.5, 'train/accuracy': 0.5})
  writer.write_scalars(2, {'test/accuracy': 0.4})
  writer.close()
  assert metric_writer.read_history(str(tmp_path)) == [
      {'step': 1, 'train/loss': 2.5, 'train/accuracy': 0.25},
      {'step': 2, 'train/loss': 1.5, 'train/accuracy': 0.5, 'test/accuracy': 0.4}]
  events = read_event_scalars(str(tmp_path))
  assert events['train/loss'] == [(1, 2.5), (2, 1.5)]
  assert events['test/accuracy'] == [(2, pytest.approx(0.4))]
  with pytest.raises(RuntimeError, match='closed'):
    writer.write_scalars(3, {'train/loss': 1.0})


def test_resumed_run_replaces_relogged_steps_and_drops_a_cut_line(tmp_path):
  history_path = tmp_path / metric_writer.HISTORY_FILE
  first = metric_writer.MetricWriter(str(tmp_path))
  for step in (1, 2, 3):
    first.write_scalars(step, {'train/loss': 10.0 + step})
  first.close()
  with open(history_path, 'a', encoding='utf-8') as file:
    file.write('{"step": 4, "train/lo')   # the process died in the middle of a line
  assert [row['step'] for row in metric_writer.read_history(str(tmp_path))] == [1, 2, 3]
  resumed = metric_writer.MetricWriter(str(tmp_path))
  resumed.write_scalars(3, {'train/loss': 3.0})
  resumed.write_scalars(4, {'train/loss': 2.0})
  resumed.close()
  history = metric_writer.read_history(str(tmp_path))
  assert [(row['step'], row['train/loss']) for row in history] == [
      (1, 11.0), (2, 12.0), (3, 3.0), (4, 2.0)]
  history_path.write_text('{"step": 1}\nnot json\n{"step": 2}\n', encoding='utf-8')
  with pytest.raises(ValueError, match='line 2 is not valid JSON'):
    metric_writer.read_history(str(tmp_path))


def test_disabled_writer_touches_no_file(tmp_path):
  logdir = tmp_path / 'not_process_zero'
  writer = metric_writer.MetricWriter(str(logdir), enabled=False)
  writer.write_scalars(1, {'train/loss': 1.0})
  writer.flush()
  writer.close()
  assert not logdir.exists()
  assert metric_writer.read_history(str(logdir)) == []
