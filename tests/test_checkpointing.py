"""The best checkpoint is the best validation score, also for a manager opened after training."""

import grain
import numpy as np

from asc_jax import checkpointing
from asc_jax import inference


def test_best_checkpoint_survives_reopening_and_is_not_just_the_latest(tmp_path):
  workdir = str(tmp_path)
  iterator = iter(grain.MapDataset.range(8).to_iter_dataset())
  manager = checkpointing.checkpoint_manager(workdir)
  for step, accuracy in ((10, 0.2), (20, 0.6), (30, 0.4), (40, None)):
    state = {'params': {'w': np.full(3, float(step), np.float32)}, 'batch_stats': {}}
    metrics = None if accuracy is None else {checkpointing.BEST_METRIC: accuracy}
    checkpointing.save(manager, step, state, iterator, metrics)
  manager.close()
  reopened = checkpointing.checkpoint_manager(workdir)
  assert reopened.all_steps() == [20, 40]        # the best and the latest are kept
  assert checkpointing.chosen_step(reopened, 'best') == 20
  assert checkpointing.chosen_step(reopened, 'latest') == 40
  assert inference.checkpoint_step(workdir, 'best') == 20
  np.testing.assert_array_equal(inference.load_variables(workdir, 'best')['params']['w'],
                                np.full(3, 20.0, np.float32))
