"""Scores every example of a data split with any model (float, quantized, teacher) on the mesh."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from asc_jax import eval_loop
from asc_jax import parallel
from asc_jax import steps
from asc_jax.data import datasets


def score_split(model: Any, variables: dict[str, Any], dataset: datasets.PreparedDataset,
                split: str, batch_size: int, mesh: jax.sharding.Mesh) -> dict[str, np.ndarray]:
  """Logits, labels, devices and indices of every record of `split`, in record order."""
  state = steps.TrainState(step=jnp.zeros((), jnp.int32), params=variables['params'],
                           batch_stats=variables.get('batch_stats', {}), opt_state=(),
                           nonfinite_step=jnp.full((), -1, jnp.int32))
  state = parallel.replicate(state, mesh)
  eval_step = jax.jit(steps.make_eval_step(model), out_shardings=parallel.batch_sharded(mesh))
  return eval_loop.score_split(eval_step, state, dataset.sources[split], batch_size=batch_size,
                               device_names=dataset.device_names, mesh=mesh)


def record_filenames(source: Any, chunk: int = 256) -> list[str]:
  """The 'filename' of every record of a source, in record order."""
  names = []
  for start in range(0, len(source), chunk):
    names.extend(record['filename'] for record in
                 source.__getitems__(list(range(start, min(start + chunk, len(source))))))
  return names
