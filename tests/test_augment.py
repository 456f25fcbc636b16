"""Tests for asc_jax/augment: shapes, determinism, statistics, and identity when switched off."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asc_jax import defaults
from asc_jax import parallel
from asc_jax.augment import chain
from asc_jax.augment import filter_augment
from asc_jax.augment import freq_mixstyle
from asc_jax.augment import mixup
from asc_jax.augment import specaugment
from asc_jax.augment import time_roll

BATCH, FREQS, FRAMES, CLASSES = 6, 16, 24, 4


def random_batch(seed=0):
  x = jax.random.normal(jax.random.key(seed), (BATCH, FREQS, FRAMES)) * 3.0 - 5.0
  labels = jax.nn.one_hot(jnp.arange(BATCH) % CLASSES, CLASSES)
  teacher = jax.nn.softmax(jax.random.normal(jax.random.key(seed + 1), (BATCH, CLASSES)))
  return x, {'label': labels, 'teacher_probs': teacher}


def all_on_config():
  config = defaults.augment_section()
  config.mixup_alpha = 0.3
  config.specaugment_freq_masks = 2
  config.specaugment_freq_mask_width = 4
  config.specaugment_time_masks = 2
  config.specaugment_time_mask_width = 5
  config.time_roll_max_shift = 3
  config.freq_mixstyle_p = 1.0
  config.filter_augment_p = 1.0
  return config


def test_mixup_weights_partners_and_targets():
  x, targets = random_batch()
  mixed_x, mixed_targets, lam, perm = mixup.mixup(jax.random.key(3), x, targets, alpha=0.4)
  assert mixed_x.shape == x.shape and mixed_x.dtype == x.dtype
  assert np.all((lam >= 0) & (lam <= 1))
  assert sorted(np.asarray(perm).tolist()) == list(range(BATCH))
  weight = lam[:, None, None]
  np.testing.assert_allclose(mixed_x, weight * x + (1 - weight) * x[perm], rtol=1e-6, atol=1e-6)
  for name in targets:
    expected = lam[:, None] * targets[name] + (1 - lam[:, None]) * targets[name][perm]
    np.testing.assert_allclose(mixed_targets[name], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(mixed_targets[name].sum(-1), 1.0, rtol=1e-6)
  again = mixup.mixup(jax.random.key(3), x, targets, alpha=0.4)
  np.testing.assert_array_equal(again[0], mixed_x)


def test_band_masks_widths_within_bounds():
  masks = specaugment.band_masks(jax.random.key(0), 500, 40, num_masks=1, max_width=7)
  widths = np.asarray(masks).sum(axis=1)
  assert widths.min() == 0 and widths.max() == 7
  # One band per row is contiguous: its masked positions form a single run.
  runs = np.abs(np.diff(np.asarray(masks).astype(int), axis=1)).sum(axis=1)
  assert runs.max() <= 2


def test_band_masks_cover_both_edges():
  masks = np.asarray(specaugment.band_masks(jax.random.key(1), 2000, 10, 1, 3))
  assert masks[:, 0].any() and masks[:, -1].any()


@pytest.mark.parametrize('mask_value', ['mean', 'zero'])
def test_specaugment_fills_masked_cells(mask_value):
  x, _ = random_batch()
  out = specaugment.specaugment(jax.random.key(5), x, freq_masks=2, freq_mask_width=4,
                                time_masks=2, time_mask_width=5, mask_value=mask_value)
  assert out.shape == x.shape and out.dtype == x.dtype
  changed = np.asarray(out != x)
  for b in range(BATCH):
    fill = float(x[b].mean()) if mask_value == 'mean' else 0.0
    np.testing.assert_allclose(np.asarray(out[b])[changed[b]], fill, rtol=1e-6)
    masked_rows = changed[b].all(axis=1).sum()
    masked_cols = changed[b].all(axis=0).sum()
    assert masked_rows <= 8 and masked_cols <= 10
  np.testing.assert_array_equal(
      out, specaugment.specaugment(jax.random.key(5), x, freq_masks=2, freq_mask_width=4,
                                   time_masks=2, time_mask_width=5, mask_value=mask_value))


def test_specaugment_rejects_unknown_mask_value():
  x, _ = random_batch()
  with pytest.raises(ValueError, match='specaugment_mask_value'):
    specaugment.specaugment(jax.random.key(0), x, freq_masks=1, freq_mask_width=2, time_masks=0,
                            time_mask_width=0, mask_value='min')


def test_time_roll_is_a_bounded_circular_shift():
  x, _ = random_batch()
  out = np.asarray(time_roll.time_roll(jax.random.key(2), x, max_shift=4))
  assert out.shape == x.shape
  shifts_seen = set()
  for b in range(BATCH):
    matches = [s for s in range(-4, 5) if np.array_equal(out[b], np.roll(x[b], s, axis=-1))]
    assert len(matches) == 1
    shifts_seen.add(matches[0])
  assert len(shifts_seen) > 1


def test_freq_mixstyle_with_lam_one_is_identity():
  x, _ = random_batch()
  perm = jnp.roll(jnp.arange(BATCH), 1)
  out = freq_mixstyle.mix_frequency_statistics(x, jnp.ones(BATCH), perm, eps=1e-6)
  np.testing.assert_allclose(out, x, rtol=1e-5, atol=1e-5)


def test_freq_mixstyle_output_has_mixed_frequency_statistics():
  x, _ = random_batch()
  x = x * jnp.linspace(0.5, 2.0, FREQS)[None, :, None]   # distinct per-frequency spreads.
  lam = jnp.linspace(0.1, 0.9, BATCH)
  perm = jnp.roll(jnp.arange(BATCH), 2)
  eps = 1e-6
  out = freq_mixstyle.mix_frequency_statistics(x, lam, perm, eps)
  mean, std = x.mean(axis=2), jnp.sqrt(x.var(axis=2) + eps)
  mixed_mean = lam[:, None] * mean + (1 - lam[:, None]) * mean[perm]
  mixed_std = lam[:, None] * std + (1 - lam[:, None]) * std[perm]
  np.testing.assert_allclose(out.mean(axis=2), mixed_mean, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(out.std(axis=2), mixed_std, rtol=1e-4)


def test_freq_mixstyle_probability_switches_whole_batch():
  x, _ = random_batch()
  np.testing.assert_array_equal(
      freq_mixstyle.freq_mixstyle(jax.random.key(0), x, p=0.0, alpha=0.3), x)
  changed = [bool(jnp.any(freq_mixstyle.freq_mixstyle(jax.random.key(k), x, p=0.5, alpha=0.3)
                          != x)) for k in range(40)]
  assert 5 < sum(changed) < 35
  out = freq_mixstyle.freq_mixstyle(jax.random.key(1), x, p=1.0, alpha=0.3)
  assert out.shape == x.shape and out.dtype == x.dtype
  # The time structure of each example and frequency is kept: only an affine map per row.
  centred_in = x - x.mean(axis=2, keepdims=True)
  centred_out = out - out.mean(axis=2, keepdims=True)
  correlation = (centred_in * centred_out).sum(2) / jnp.sqrt(
      (centred_in**2).sum(2) * (centred_out**2).sum(2))
  np.testing.assert_allclose(correlation, 1.0, rtol=1e-4)


def gains(kind, min_bands, max_bands, batch=64, freqs=40, seed=0):
  return np.asarray(filter_augment.gain_curves(
      jax.random.key(seed), batch, freqs, db_range=6.0, min_bands=min_bands,
      max_bands=max_bands, kind=kind))


def test_filter_augment_one_band_is_a_line_or_a_constant():
  line = gains('linear', 1, 1)
  np.testing.assert_allclose(np.diff(line, n=2, axis=1), 0.0, atol=1e-5)
  assert np.abs(line[:, 0] - line[:, -1]).max() > 1.0    # the two end gains are drawn apart.
  constant = gains('step', 1, 1)
  np.testing.assert_array_equal(constant, constant[:, :1].repeat(constant.shape[1], axis=1))


def test_filter_augment_curves_are_piecewise_with_the_drawn_number_of_bands():
  step = gains('step', 3, 6)
  changes = (np.diff(step, axis=1) != 0).sum(axis=1)
  assert changes.max() <= 5 and changes.min() >= 1 and len(set(changes)) >= 3
  line = gains('linear', 3, 6)
  # Every knot bends the line between two neighbouring bins at most: <= 2 bends per boundary
  # plus the knots at both ends.
  bends = (np.abs(np.diff(line, n=2, axis=1)) > 1e-4).sum(axis=1)
  assert bends.max() <= 2 * 5 and bends.min() >= 1
  for curves in (step, line):
    assert np.abs(curves).max() <= 6.0 and np.abs(curves).max() > 5.0
    assert abs(curves.mean()) < 0.5


def test_filter_augment_adds_one_gain_per_frequency_with_probability_p():
  x, _ = random_batch()
  kwargs = dict(db_range=6.0, min_bands=3, max_bands=6, kind='linear')
  np.testing.assert_array_equal(filter_augment.filter_augment(jax.random.key(0), x, p=0.0,
                                                              **kwargs), x)
  out = filter_augment.filter_augment(jax.random.key(0), x, p=1.0, **kwargs)
  offsets = np.asarray(out - x)
  np.testing.assert_allclose(offsets, offsets[:, :, :1].repeat(FRAMES, axis=2), atol=1e-5)
  assert np.abs(offsets).max() <= 6.0 * filter_augment.NATS_PER_DB + 1e-5
  assert (np.abs(offsets).max(axis=(1, 2)) > 0).all()
  changed = [int((filter_augment.filter_augment(jax.random.key(k), x, p=0.5, **kwargs) != x)
                 .any(axis=(1, 2)).sum()) for k in range(20)]
  assert 30 < sum(changed) < 90                           # of 120 examples.


def test_filter_augment_rejects_unknown_settings():
  with pytest.raises(ValueError, match='filter_augment_type'):
    gains('bell', 3, 6)
  with pytest.raises(ValueError, match='filter_augment_min_bands'):
    gains('linear', 4, 3)


def test_pipeline_all_off_is_identity():
  x, targets = random_batch()
  out_x, out_targets = chain.augment_batch(jax.random.key(0), x, targets,
                                              defaults.augment_section())
  assert out_x is x and out_targets is targets


def test_pipeline_all_on_under_jit_is_deterministic_and_keeps_shapes():
  x, targets = random_batch()
  config = all_on_config()
  step = jax.jit(lambda key, x, targets: chain.augment_batch(key, x, targets, config))
  out_x, out_targets = step(jax.random.key(7), x, targets)
  again_x, again_targets = step(jax.random.key(7), x, targets)
  other_x, _ = step(jax.random.key(8), x, targets)
  assert out_x.shape == x.shape and out_x.dtype == x.dtype
  np.testing.assert_array_equal(out_x, again_x)
  assert not np.array_equal(out_x, other_x)
  for name in targets:
    assert out_targets[name].shape == targets[name].shape
    np.testing.assert_array_equal(out_targets[name], again_targets[name])
    np.testing.assert_allclose(out_targets[name].sum(-1), 1.0, rtol=1e-6)
  # Labels and teacher targets were mixed with the same weights and partners.
  mixup_key = jax.random.fold_in(jax.random.key(7), chain._MIXUP)
  _, _, lam, perm = mixup.mixup(mixup_key, x, targets, 0.3)
  np.testing.assert_allclose(
      out_targets['teacher_probs'],
      lam[:, None] * targets['teacher_probs'] + (1 - lam[:, None]) * targets['teacher_probs'][perm],
      rtol=1e-6, atol=1e-7)


def test_pipeline_bfloat16_keeps_dtype():
  x, targets = random_batch()
  out_x, _ = chain.augment_batch(jax.random.key(0), x.astype(jnp.bfloat16), targets,
                                    all_on_config())
  assert out_x.dtype == jnp.bfloat16 and out_x.shape == x.shape


def test_pipeline_on_a_batch_sharded_over_all_devices_matches_one_device():
  mesh = parallel.make_mesh()
  batch = 2 * len(jax.devices())
  x = jax.random.normal(jax.random.key(0), (batch, FREQS, FRAMES))
  targets = {'label': jax.nn.one_hot(jnp.arange(batch) % CLASSES, CLASSES)}
  config = all_on_config()
  step = jax.jit(lambda key, x, targets: chain.augment_batch(key, x, targets, config))
  sharded = step(jax.random.key(4), *jax.device_put((x, targets), parallel.batch_sharded(mesh)))
  single = step(jax.random.key(4), x, targets)
  for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(single)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_random_draws_with_rejection_loops_need_no_collective_on_a_mesh():
  """jax.random.beta loops until a data-dependent condition; split over devices its loop
  condition becomes an all-reduce, and independent loops (mixup's, Freq-MixStyle's) could reach
  theirs in different orders on two host devices and deadlock. Traced on the mesh (as the
  builder traces the train step), the draws are replicated: no all-reduce comes from them, and
  the values are those of one device."""
  mesh = parallel.make_mesh()
  batch = 2 * len(jax.devices())
  x = jax.random.normal(jax.random.key(0), (batch, FREQS, FRAMES))
  targets = {'label': jax.nn.one_hot(jnp.arange(batch) % CLASSES, CLASSES)}
  config = all_on_config()

  def augment(key, x, targets):
    return chain.augment_batch(key, x, targets, config)

  shardings = (parallel.replicated(mesh), parallel.batch_sharded(mesh),
               parallel.batch_sharded(mesh))
  arguments = (jax.random.key(4), *jax.device_put((x, targets), parallel.batch_sharded(mesh)))
  texts = {}
  for name, function in (('plain', augment), ('on mesh', parallel.traced_on(augment, mesh))):
    compiled = jax.jit(function, in_shardings=shardings).lower(*arguments).compile()
    texts[name] = [line for line in compiled.as_text().splitlines()
                   if ' all-reduce(' in line and '_gamma' in line]
  assert texts['plain']        # the hazard is real: gamma loop conditions all-reduce when split
  assert texts['on mesh'] == []
  on_mesh = jax.jit(parallel.traced_on(augment, mesh), in_shardings=shardings)(*arguments)
  single = jax.jit(augment)(jax.random.key(4), x, targets)
  for a, b in zip(jax.tree.leaves(on_mesh), jax.tree.leaves(single)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
