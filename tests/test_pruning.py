"""Tests for magnitude pruning: schedule, achieved sparsity, exact zeros, masks in the opt state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from asc_jax import defaults
from asc_jax import parallel
from asc_jax.compress import pruning

SCHEDULE = pruning.PolynomialSparsity(target_sparsity=0.75, start_step=2, end_step=12,
                                      update_every=3)
PRUNED = ('Conv_0/kernel', 'Dense_0/kernel')


def param_tree(seed=0):
  keys = jax.random.split(jax.random.key(seed), 8)
  return {
      'Conv_0': {'kernel': jax.random.normal(keys[0], (3, 3, 4, 8)),
                 'bias': jax.random.normal(keys[1], (8,))},
      'BatchNorm_0': {'scale': jax.random.normal(keys[2], (8,)),
                      'bias': jax.random.normal(keys[3], (8,))},
      'Dense_0': {'kernel': 0.1 * jax.random.normal(keys[4], (40, 8)),
                  'bias': jax.random.normal(keys[5], (8,))},
      'Small_0': {'kernel': jax.random.normal(keys[6], (2, 5))},
  }


def loss(params, goal):
  """Separable quadratic: each leaf's gradient depends only on that leaf."""
  return sum(jnp.sum((p - g)**2) for p, g in zip(jax.tree.leaves(params), jax.tree.leaves(goal)))


def make_step(tx, goal=None):
  goal = param_tree(seed=1) if goal is None else goal

  @jax.jit
  def step(params, opt_state):
    grads = jax.grad(loss)(params, goal)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  return step


def run(tx, params, num_steps, goal=None):
  step = make_step(tx, goal)
  opt_state = tx.init(params)
  for _ in range(num_steps):
    params, opt_state = step(params, opt_state)
  return params, opt_state


def sgd_with_pruning(scope='layerwise', **prunable_options):
  return optax.chain(optax.add_decayed_weights(1e-3), optax.sgd(0.05, momentum=0.9),
                     pruning.magnitude_pruning(
                         SCHEDULE, scope=scope,
                         prunable=pruning.default_prunable(**prunable_options)))


def test_schedule_values_at_start_middle_end():
  schedule = pruning.PolynomialSparsity(target_sparsity=0.8, start_step=10, end_step=30,
                                        initial_sparsity=0.1, update_every=7)
  values = [float(schedule(step)) for step in (0, 10, 20, 30, 50)]
  np.testing.assert_allclose(values, [0.1, 0.1, 0.8 - 0.7 * 0.5**3, 0.8, 0.8], rtol=1e-6)
  updates = [step for step in range(40) if bool(schedule.is_update_step(jnp.int32(step)))]
  assert updates == [10, 17, 24, 30]


def test_one_shot_schedule_reaches_target_at_start():
  schedule = pruning.PolynomialSparsity(target_sparsity=0.5, start_step=4, end_step=4)
  assert float(schedule(3)) == 0.0 and float(schedule(4)) == 0.5
  assert [s for s in range(10) if bool(schedule.is_update_step(jnp.int32(s)))] == [4]


@pytest.mark.parametrize('bad', [dict(target_sparsity=1.0), dict(start_step=5, end_step=2),
                                 dict(update_every=0)])
def test_schedule_rejects_bad_values(bad):
  settings = dict(target_sparsity=0.5, start_step=0, end_step=10, update_every=1) | bad
  with pytest.raises(ValueError, match='config.prune'):
    pruning.PolynomialSparsity(**settings)


def test_layerwise_pruning_reaches_target_and_stays_exactly_zero():
  tx = sgd_with_pruning()
  step = make_step(tx)
  params, opt_state = param_tree(), tx.init(param_tree())
  sparsity_by_step = []
  for _ in range(SCHEDULE.end_step + 1):
    params, opt_state = step(params, opt_state)
    sparsity_by_step.append(pruning.sparsity_report(params)['Conv_0/kernel'])
  assert sparsity_by_step[0] == 0.0
  assert all(a <= b for a, b in zip(sparsity_by_step, sparsity_by_step[1:]))
  report = pruning.sparsity_report(params)
  assert report['Conv_0/kernel'] == 0.75 and report['Dense_0/kernel'] == 0.75
  zeros = {name: np.asarray(params[name.split('/')[0]]['kernel']) == 0 for name in PRUNED}
  for _ in range(10):
    params, opt_state = step(params, opt_state)
    for name in PRUNED:
      kernel = np.asarray(params[name.split('/')[0]]['kernel'])
      np.testing.assert_array_equal(kernel == 0, zeros[name])
      assert np.all(kernel[zeros[name]] == 0.0)


def test_global_pruning_reaches_overall_target():
  tx = sgd_with_pruning(scope='global')
  params, _ = run(tx, param_tree(), SCHEDULE.end_step + 1)
  prunable = pruning.default_prunable()
  assert pruning.overall_sparsity(params, prunable) == 0.75
  report = pruning.sparsity_report(params, prunable)
  assert set(report) == set(PRUNED)
  # Dense_0 holds the smallest weights, so one global threshold prunes it harder.
  assert report['Dense_0/kernel'] > 0.75 > report['Conv_0/kernel']


def test_non_prunable_leaves_follow_the_plain_optimizer_exactly():
  pruned, _ = run(sgd_with_pruning(), param_tree(), 20)
  plain, _ = run(optax.chain(optax.add_decayed_weights(1e-3), optax.sgd(0.05, momentum=0.9)),
                 param_tree(), 20)
  for module, name in [('Conv_0', 'bias'), ('BatchNorm_0', 'scale'), ('BatchNorm_0', 'bias'),
                       ('Dense_0', 'bias'), ('Small_0', 'kernel')]:
    np.testing.assert_array_equal(pruned[module][name], plain[module][name])
    assert np.all(np.asarray(pruned[module][name]) != 0)


def test_masks_live_in_the_optimizer_state():
  params, opt_state = run(sgd_with_pruning(), param_tree(), 15)
  state = opt_state[-1]
  assert isinstance(state, pruning.MagnitudePruningState)
  assert int(state.count) == 15
  assert jax.tree.structure(state.masks) == jax.tree.structure(params)
  for (path, mask), leaf in zip(jax.tree_util.tree_flatten_with_path(state.masks)[0],
                                jax.tree.leaves(params)):
    assert mask.dtype == jnp.bool_ and mask.shape == leaf.shape
    if pruning.path_name(path) in PRUNED:
      np.testing.assert_array_equal(mask, np.asarray(leaf) != 0)
    else:
      assert np.all(mask)
  for masked, leaf in zip(jax.tree.leaves(pruning.apply_masks(params, state.masks)),
                          jax.tree.leaves(params)):
    np.testing.assert_array_equal(masked, leaf)


def test_never_prune_regexes_and_min_size():
  params, _ = run(sgd_with_pruning(never_prune=('^Dense_',), min_size=10), param_tree(), 13)
  report = pruning.sparsity_report(params)
  assert report['Dense_0/kernel'] == 0.0
  assert report['Conv_0/kernel'] == 0.75
  assert report['Small_0/kernel'] == 0.8   # 10 entries, now large enough: round(7.5) = 8 pruned.
  with pytest.raises(ValueError, match='never_prune'):
    pruning.default_prunable(never_prune=('(',))


def test_depthwise_kernels_are_kept_whole_unless_asked():
  params = {**param_tree(), 'Depthwise_0': {'kernel': jax.random.normal(jax.random.key(9),
                                                                        (3, 1, 1, 96))}}
  goal = jax.tree.map(lambda leaf: -leaf, params)
  kept, _ = run(sgd_with_pruning(), params, 13, goal)
  assert pruning.sparsity_report(kept)['Depthwise_0/kernel'] == 0.0
  assert pruning.sparsity_report(kept)['Conv_0/kernel'] == 0.75
  pruned, _ = run(sgd_with_pruning(prune_depthwise=True), params, 13, goal)
  assert pruning.sparsity_report(pruned)['Depthwise_0/kernel'] == 0.75


def test_update_without_params_is_refused():
  tx = pruning.magnitude_pruning(SCHEDULE)
  params = param_tree()
  with pytest.raises(ValueError, match='needs the params'):
    tx.update(params, tx.init(params))


def test_sharded_params_give_the_same_result():
  mesh = parallel.make_mesh()
  shardings = jax.tree.map(lambda _: NamedSharding(mesh, P()), param_tree())
  shardings['Dense_0']['kernel'] = NamedSharding(mesh, P(parallel.DATA_AXIS))
  sharded, state = run(sgd_with_pruning(), jax.device_put(param_tree(), shardings), 14)
  single, _ = run(sgd_with_pruning(), param_tree(), 14)
  for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(single)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(np.asarray(sharded['Dense_0']['kernel']) == 0,
                                np.asarray(single['Dense_0']['kernel']) == 0)
  assert state[-1].masks['Dense_0']['kernel'].shape == (40, 8)


def test_pruning_from_config():
  config = defaults.prune_section()
  assert pruning.pruning_from_config(config, steps_per_epoch=10) is None
  config.target_sparsity = 0.75
  config.start_epoch, config.end_epoch = 0.2, 1.2
  config.update_every_steps = 3
  tx = pruning.pruning_from_config(config, steps_per_epoch=10)
  params, _ = run(optax.chain(optax.sgd(0.05), tx), param_tree(), 13)
  assert pruning.sparsity_report(params)['Dense_0/kernel'] == 0.75
  config.scope = 'per_channel'
  with pytest.raises(ValueError, match='config.prune.scope'):
    pruning.pruning_from_config(config, steps_per_epoch=10)


def test_orbax_resume_keeps_masks_and_exact_zeros(tmp_path):
  tx = sgd_with_pruning()
  step = make_step(tx)
  params, opt_state = run(tx, param_tree(), 8)   # stopped in the middle of the schedule.
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(tmp_path / 'state', {'params': params, 'opt_state': opt_state})
  checkpointer.wait_until_finished()
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                          {'params': param_tree(), 'opt_state': tx.init(param_tree())})
  restored = checkpointer.restore(tmp_path / 'state', abstract)
  assert isinstance(restored['opt_state'][-1], pruning.MagnitudePruningState)
  assert restored['opt_state'][-1].masks['Conv_0']['kernel'].dtype == jnp.bool_
  resumed_params, resumed_state = restored['params'], restored['opt_state']
  for _ in range(10):
    params, opt_state = step(params, opt_state)
    resumed_params, resumed_state = step(resumed_params, resumed_state)
  for a, b in zip(jax.tree.leaves((params, opt_state)), jax.tree.leaves((resumed_params,
                                                                         resumed_state))):
    np.testing.assert_array_equal(a, b)
  assert pruning.sparsity_report(resumed_params)['Dense_0/kernel'] == 0.75
