"""Exact scoring of a data split on the mesh: every record is scored once, never dropped or
doubled, whatever the batch size and the number of processes.

The eval step is compiled by asc_jax.builder; this module only feeds it padded, masked batches
(asc_jax.data.input_pipeline.eval_batches), gathers the outputs of all processes and puts them
back in record order. Metrics are computed from the result by asc_jax.evaluate.
"""

import time
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from asc_jax import console
from asc_jax import parallel
from asc_jax.data import records
from asc_jax.data import input_pipeline


def _gather(array: jax.Array) -> np.ndarray:
  if jax.process_count() == 1:
    return np.asarray(array)
  return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def score_split(eval_step: Callable, state: Any, source: Any, *, batch_size: int,
                device_names: Sequence[str], mesh: jax.sharding.Mesh, name: str = 'evaluate'
                ) -> dict[str, np.ndarray]:
  """'logits', 'label', 'device' and 'index' of every record of `source`, in record order.

  `batch_size` is global (split over the processes); `eval_step(state, batch)` returns logits.
  """
  batches = input_pipeline.eval_batches(source, batch_size=batch_size // jax.process_count(),
                                        device_names=device_names,
                                        process_index=jax.process_index(),
                                        process_count=jax.process_count())
  parts = {'logits': [], 'label': [], 'device': [], 'index': []}
  start = time.perf_counter()
  progress = console.progress(batches, desc=name, unit='batch', leave=False,
                              disable=jax.process_index() != 0)
  for batch in progress:
    arrays = parallel.to_global_batch(batch, mesh)
    logits = _gather(eval_step(state, arrays))
    mask = _gather(arrays['mask']).astype(bool)
    parts['logits'].append(logits[mask])
    for key in ('label', 'device', 'index'):
      parts[key].append(_gather(arrays[key])[mask])
  scored = {key: np.concatenate(values) for key, values in parts.items()}
  order = np.argsort(scored['index'], kind='stable')
  scored = {key: values[order] for key, values in scored.items()}
  if len(scored['index']) != len(source) or np.any(scored['index'] != np.arange(len(source))):
    raise RuntimeError(f'{name}: scored {len(scored["index"])} examples of {len(source)}; every '
                       'example must be scored exactly once.')
  seconds = time.perf_counter() - start
  if jax.process_index() == 0:
    console.note(f'{name}: {len(source)} clips in {seconds:.1f} s '
                 f'({len(source) / seconds:.1f} clips/s)')
  return scored


def record_filenames(source: Any) -> list[str]:
  """The 'filename' of every record of a source, in record order."""
  return [name for name, in records.record_fields(source, 'filename')]
