"""The progress hook counts finished steps and logs interval means."""

import numpy as np
import pytest

from asc_jax import hooks
from asc_jax import loop
from asc_jax import metric_writer


def test_progress_bar_counts_steps_whose_metrics_are_back(tmp_path):
  writer = metric_writer.MetricWriter(str(tmp_path))
  report = hooks.ReportProgress(writer, total_steps=7, start_step=0, clips_per_step=4,
                                every_steps=3, enabled=True)
  counted = []
  for step in range(1, 8):
    report(loop.StepContext(step=step, total_steps=7, state=None, stopping=False,
                            metrics={'loss': np.float32(step), 'accuracy': np.float32(0.5)}))
    counted.append(report._bar.n)   # pylint: disable=protected-access
  writer.close()
  # Dispatched steps are not shown as done until their metrics are fetched (steps 3, 6, 7).
  assert counted == [0, 0, 3, 3, 3, 6, 7]
  history = metric_writer.read_history(str(tmp_path))
  assert [row['step'] for row in history] == [3, 6, 7]
  assert [row['train/loss'] for row in history] == pytest.approx([2.0, 5.0, 7.0])
  assert all(row['train/clips_per_s'] > 0 for row in history)
  assert [float(loss) for loss in report.losses] == [1, 2, 3, 4, 5, 6, 7]
