"""Exact evaluation on the mesh: every example of a split is scored once, never dropped or
doubled, whatever the batch size and the number of processes; then metrics and reports."""

import os
import time
from typing import Any, Callable

import jax
import numpy as np
import tqdm
from jax.experimental import multihost_utils

from asc_jax import evaluate
from asc_jax import parallel
from asc_jax import reports
from asc_jax.data import input_pipeline


def _gather(array: jax.Array) -> np.ndarray:
  if jax.process_count() == 1:
    return np.asarray(array)
  return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def score_split(eval_step: Callable, state: Any, source: Any, *, batch_size: int,
                device_names, mesh) -> dict[str, np.ndarray]:
  """Logits, labels, devices and source indices of every example of `source`, in source order."""
  batches = input_pipeline.eval_batches(source, batch_size=batch_size // jax.process_count(),
                                  device_names=device_names, process_index=jax.process_index(),
                                  process_count=jax.process_count())
  parts = {'logits': [], 'label': [], 'device': [], 'index': []}
  start = time.perf_counter()
  progress = tqdm.tqdm(batches, desc='evaluate', unit='batch', leave=False,
                       disable=jax.process_index() != 0)
  for batch in progress:
    arrays = parallel.to_global_batch(batch, mesh)
    logits = _gather(eval_step(state, arrays))
    mask = _gather(arrays['mask']).astype(bool)
    parts['logits'].append(logits[mask])
    for name in ('label', 'device', 'index'):
      parts[name].append(_gather(arrays[name])[mask])
  scored = {name: np.concatenate(values) for name, values in parts.items()}
  order = np.argsort(scored['index'], kind='stable')
  scored = {name: values[order] for name, values in scored.items()}
  if len(scored['index']) != len(source) or np.any(scored['index'] != np.arange(len(source))):
    raise RuntimeError(f'evaluation scored {len(scored["index"])} examples of {len(source)}: '
                       'every example must be scored exactly once.')
  seconds = time.perf_counter() - start
  if jax.process_index() == 0:
    print(f'evaluated {len(source)} clips in {seconds:.1f} s ({len(source) / seconds:.1f} clips/s)')
  return scored


def evaluate_and_report(scored: dict[str, np.ndarray], source: Any, *, class_names, device_names,
                        workdir: str, step: int, tag: str = 'test', write_files: bool = True
                        ) -> dict:
  """Metrics of a scored split; with `write_files`, the eval JSON, predictions CSV and plots."""
  metrics = evaluate.compute_metrics(scored['logits'], scored['label'], scored['device'],
                                     class_names, device_names)
  if write_files and jax.process_index() == 0:
    reports.write_eval_report(workdir, metrics, step=step, tag=tag)
    filenames = [source[int(index)]['filename'] for index in scored['index']]
    reports.write_predictions_csv(os.path.join(workdir, f'predictions_{tag}.csv'), filenames,
                                  evaluate.softmax(scored['logits']), class_names)
    reports.plot_confusion_matrix(os.path.join(workdir, f'confusion_{tag}.png'), metrics,
                                  class_names)
    reports.plot_per_device_accuracy(os.path.join(workdir, f'accuracy_per_device_{tag}.png'),
                                     metrics)
  return metrics
