"""Loading a trained workdir back for inference: its variables and a ready-to-apply model.

Checkpoints are restored onto one local device whatever topology saved them (a TPU pod's
checkpoint on a laptop), from the stored metadata alone: no train state or optimizer is built.
"""

import dataclasses
import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from asc_jax import checkpointing
from asc_jax import models
from asc_jax import run_files


def load_variables(workdir: str, which: str = 'latest') -> dict[str, Any]:
  """{'params', 'batch_stats'} of the stored model ('latest' or 'best' checkpoint), as numpy."""
  manager = checkpointing.checkpoint_manager(workdir)
  step = checkpointing.chosen_step(manager, which)
  if step is None:
    raise FileNotFoundError(
        f'no {which} checkpoint under {checkpointing.checkpoint_dir(workdir)}: train first, or '
        'pass the workdir of a finished run (a best checkpoint needs a validation split).')
  saved = ocp.StandardCheckpointHandler().metadata(manager.directory / str(step) / 'state')
  on_host = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=on_host),
                        saved)
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
  state = jax.device_get(restored['state'])
  return {'params': state['params'], 'batch_stats': state.get('batch_stats', {})}


def checkpoint_step(workdir: str, which: str = 'latest') -> int:
  """The training step of the chosen checkpoint (-1 when there is none)."""
  step = checkpointing.chosen_step(checkpointing.checkpoint_manager(workdir), which)
  return -1 if step is None else int(step)


@dataclasses.dataclass(frozen=True)
class InferenceBundle:
  """A trained model ready for `model.apply(variables, x, train=False)`."""
  config: ml_collections.ConfigDict
  model: Any
  variables: dict[str, Any]
  class_names: tuple[str, ...]
  device_names: tuple[str, ...]
  feature_params: dict


def load_for_inference(workdir: str, which: str = 'latest') -> InferenceBundle:
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f'{workdir} is not a directory: pass a trained asc_jax workdir.')
  config = run_files.load_config(workdir)
  info = run_files.load_dataset_info(workdir)
  variables = jax.tree.map(jax.numpy.asarray, load_variables(workdir, which))
  return InferenceBundle(config=config, model=models.build_model(config.model), variables=variables,
                         class_names=tuple(info['class_names']),
                         device_names=tuple(info['device_names']),
                         feature_params=info['feature_params'])
