"""Everything a workdir stores: Orbax checkpoints of the train state and the data iterator,
the run's config and dataset description, and loading a trained model back for inference.

Workdir layout:
  config.json         the ConfigDict the run was started with
  dataset_info.json   class names, device names, feature parameters, input shape
  checkpoints/<step>/ Orbax checkpoints: 'state' (TrainState) and 'data' (Grain iterator);
                      the latest and the best (by test accuracy) are kept
"""

import dataclasses
import json
import os
from typing import Any, Optional

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp

from asc_jax import fileio

CONFIG_FILE = 'config.json'
DATASET_INFO_FILE = 'dataset_info.json'
CHECKPOINT_DIR = 'checkpoints'


def checkpoint_manager(workdir: str, keep_latest: int = 1) -> ocp.CheckpointManager:
  """Keeps the `keep_latest` newest checkpoints and the one with the best test accuracy."""
  policy = ocp.checkpoint_managers.AnyPreservationPolicy([
      ocp.checkpoint_managers.LatestN(keep_latest),
      ocp.checkpoint_managers.BestN(get_metric_fn=lambda metrics: metrics['accuracy'], n=1,
                                    keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)),
                               options=options, item_names=('state', 'data'))


def save(manager: ocp.CheckpointManager, step: int, state: Any, data_iterator: Any,
         metrics: Optional[dict[str, float]] = None) -> None:
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                             data=grain.checkpoint.CheckpointSave(data_iterator)),
               metrics=metrics, force=True)
  manager.wait_until_finished()


def restore_latest(manager: ocp.CheckpointManager, abstract_state: Any, data_iterator: Any
                   ) -> Optional[Any]:
  """Restores the newest checkpoint into `abstract_state`'s structure and shardings (and moves
  `data_iterator` to where that run stopped); None when the workdir has no checkpoint yet."""
  step = manager.latest_step()
  if step is None:
    return None
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state),
      data=grain.checkpoint.CheckpointRestore(data_iterator)))
  return restored['state']


def write_run_files(workdir: str, config: ml_collections.ConfigDict, dataset_info: dict) -> None:
  fileio.atomic_write_text(os.path.join(workdir, CONFIG_FILE), config.to_json_best_effort(indent=2))
  fileio.atomic_write_json(os.path.join(workdir, DATASET_INFO_FILE), dataset_info)


def _read_json(workdir: str, name: str) -> Any:
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} is missing: {workdir} is not a trained asc_jax workdir '
                            '(run python -m asc_jax.main --config=... --workdir=... first).')
  with open(path, encoding='utf-8') as file:
    return json.load(file)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(_read_json(workdir, CONFIG_FILE))


def load_dataset_info(workdir: str) -> dict:
  return _read_json(workdir, DATASET_INFO_FILE)


def load_variables(workdir: str, which: str = 'latest') -> dict[str, Any]:
  """{'params', 'batch_stats'} of the stored model ('latest' or 'best' checkpoint), as numpy."""
  manager = checkpoint_manager(workdir)
  step = manager.best_step() if which == 'best' else manager.latest_step()
  if step is None:
    raise FileNotFoundError(f'no {which} checkpoint under {os.path.join(workdir, CHECKPOINT_DIR)}: '
                            'train first, or pass the workdir of a finished run.')
  # Restored onto one local device whatever topology saved it (a TPU pod's checkpoint on a laptop).
  saved = ocp.StandardCheckpointHandler().metadata(manager.directory / str(step) / 'state')
  on_host = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=on_host),
                        saved)
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
  state = jax.device_get(restored['state'])
  return {'params': state['params'], 'batch_stats': state.get('batch_stats', {})}


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
  from asc_jax import models  # Imported here: the model code is not needed to read configs.
  config = load_config(workdir)
  info = load_dataset_info(workdir)
  variables = jax.tree.map(jax.numpy.asarray, load_variables(workdir, which))
  return InferenceBundle(config=config, model=models.build_model(config.model), variables=variables,
                         class_names=tuple(info['class_names']),
                         device_names=tuple(info['device_names']),
                         feature_params=info['feature_params'])
