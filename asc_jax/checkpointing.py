"""The Orbax checkpoint manager of a training run: the train state and the data iterator(s).

Layout: WORKDIR/checkpoints/<step>/ holds item 'state' (the TrainState, stacked for a vmapped
sweep) and item 'data' (the Grain iterator's position, one JSON file per process). The newest
`keep_latest` checkpoints are kept, plus the one with the best validation accuracy when
checkpoints are saved with metrics (asc_jax.hooks.Checkpointing passes them).
"""

import os
from typing import Any, Optional

import grain
import orbax.checkpoint as ocp

CHECKPOINT_DIR = 'checkpoints'
BEST_METRIC = 'validation_accuracy'


def checkpoint_dir(workdir: str) -> str:
  return os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))


def _best_metric(metrics: dict) -> float:
  return metrics.get(BEST_METRIC, float('-inf'))


def checkpoint_manager(workdir: str, keep_latest: int = 1) -> ocp.CheckpointManager:
  """Keeps the `keep_latest` newest checkpoints and the one with the best BEST_METRIC.

  `best_fn` is what makes Orbax write each checkpoint's metrics to disk and rank them in
  `best_step()`; the preservation policy alone keeps the best checkpoint but forgets why, and
  a reopened manager's `best_step()` then answers the latest step.
  """
  policy = ocp.checkpoint_managers.AnyPreservationPolicy([
      ocp.checkpoint_managers.LatestN(keep_latest),
      ocp.checkpoint_managers.BestN(get_metric_fn=_best_metric, n=1,
                                    keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(preservation_policy=policy, best_fn=_best_metric,
                                         best_mode='max', create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                               item_names=('state', 'data'))


def save(manager: ocp.CheckpointManager, step: int, state: Any, data_iterator: Any,
         metrics: Optional[dict[str, float]] = None) -> None:
  """Saves synchronously (every process takes part); `metrics` rank it for the best checkpoint."""
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


def chosen_step(manager: ocp.CheckpointManager, which: str) -> Optional[int]:
  """The step of the 'latest' or the 'best' (by validation accuracy) checkpoint, or None."""
  if which not in ('latest', 'best'):
    raise ValueError(f'checkpoint {which!r} is unknown: use latest or best.')
  return manager.best_step() if which == 'best' else manager.latest_step()

