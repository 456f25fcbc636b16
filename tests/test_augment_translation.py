"""Device translation inside the jitted train step, with a real translator trained on
synthetic_scenes/tiny: shapes, dtypes, determinism, only device-a examples change, p=0 is the
identity, and the classifier's train step runs with it over an 8-device mesh; a classifier run
without a translator trains its own on its own train split."""

import json
import os

import jax
import numpy as np
import pytest

from asc_jax import builder
from asc_jax import train
from asc_jax.augment import translation
from asc_jax.data import datasets
from asc_jax.data import input_pipeline
from asc_jax.translation import fit
from asc_jax.translation import pairs as pairs_lib
from asc_jax.translation import store

from conftest import load_config_file
from conftest import tiny_config

TRANSLATOR_CONFIG = os.path.join(os.path.dirname(__file__), '..', 'configs', 'translator.py')


@pytest.fixture(scope='module')
def translator_workdir(tiny_data_dir, tmp_path_factory):
  config = load_config_file(TRANSLATOR_CONFIG, 'tiny')
  config.data.data_dir = tiny_data_dir
  config.translator.num_steps = 20
  workdir = str(tmp_path_factory.mktemp('translator'))
  fit.train_translator(config, workdir)
  return workdir


@pytest.fixture(scope='module')
def train_batch(tiny_data_dir):
  """32 training examples, device 'a' and others mixed (the tiny train split's first records
  are device a, the last ones other devices)."""
  dataset = datasets.prepare(tiny_config(tiny_data_dir))
  source = dataset.sources['train']
  indices = np.concatenate([np.arange(16), np.arange(len(source) - 16, len(source))])
  batch = input_pipeline.BatchReader(source, dataset.device_names, with_mask=False)(indices)
  assert 0 < (batch['device'] == 0).sum() < len(indices)
  return batch


def classifier_config(tiny_data_dir, workdir, p):
  config = tiny_config(tiny_data_dir)
  config.augment.translation_workdir = workdir
  config.augment.translation_p = p
  return config


def test_p_zero_builds_no_translation(tiny_data_dir, translator_workdir):
  assert translation.load_device_translation(classifier_config(tiny_data_dir, translator_workdir, 0.0)
                                      ) is None
  assert translation.load_device_translation(classifier_config(tiny_data_dir, '', 0.0)) is None
  with pytest.raises(ValueError, match='translation_workdir'):
    translation.load_device_translation(classifier_config(tiny_data_dir, '', 0.5))
  other_dataset = classifier_config(tiny_data_dir, translator_workdir, 0.5)
  other_dataset.data.name = 'tau_urban_acoustic_scenes_2020_mobile'
  with pytest.raises(ValueError, match='trained on'):
    translation.load_device_translation(other_dataset)


def test_translation_touches_only_device_a_examples_and_is_deterministic(
    tiny_data_dir, translator_workdir, train_batch):
  translate = jax.jit(translation.load_device_translation(
      classifier_config(tiny_data_dir, translator_workdir, 1.0)))
  x, device = train_batch['logmel'], train_batch['device']
  out = np.asarray(translate(jax.random.key(0), x, device))
  assert out.shape == x.shape and out.dtype == x.dtype
  is_a = device == 0
  np.testing.assert_array_equal(out[~is_a], x[~is_a])
  assert np.all(np.abs(out[is_a] - x[is_a]).mean(axis=(1, 2)) > 1e-3)
  np.testing.assert_array_equal(np.asarray(translate(jax.random.key(0), x, device)), out)


def test_probability_and_targets_follow_the_key(translator_workdir, train_batch):
  """A translate function that writes the target index into the output shows which device was
  drawn; the real translator checks p = 0."""
  x, device = train_batch['logmel'], train_batch['device']
  is_a = device == 0

  def target_as_output(values, targets):
    return 0 * values + targets[:, None, None]

  @jax.jit
  def draw(key):
    return translation.translate_source_examples(
        key, x, device, p=0.5, translate=target_as_output, source_device=0,
        target_devices=(1, 2, 3, 4, 5))

  draws = [jax.device_get(draw(jax.random.key(seed))) for seed in range(16)]
  replaced = np.stack([r for _, r in draws])
  assert not replaced[:, ~is_a].any()
  assert 0.35 < replaced[:, is_a].mean() < 0.65
  targets = np.concatenate([out[r, 0, 0] for out, r in draws])
  assert set(targets) == {1.0, 2.0, 3.0, 4.0, 5.0}
  np.testing.assert_array_equal(draws[3][0], jax.device_get(draw(jax.random.key(3)))[0])
  loaded = store.load(translator_workdir)
  out, none_replaced = translation.translate_source_examples(
      jax.random.key(0), x, device, p=0.0, translate=loaded.apply, source_device=0,
      target_devices=(1,))
  assert not np.asarray(none_replaced).any()
  np.testing.assert_array_equal(np.asarray(out), x)


def test_train_step_with_translation_runs_on_eight_devices(tiny_data_dir, translator_workdir,
                                                           train_batch):
  """One compile at p = 1: the same batch relabelled as recorded by device b (so nothing is
  translated) gives a different loss; the batch's 'device' is read by nothing else."""
  config = classifier_config(tiny_data_dir, translator_workdir, 1.0)
  config.model.dropout_rate = 0.0
  dataset = datasets.prepare(config)
  run = builder.build(config, dataset, jax.devices(),
                      device_augmentation=translation.load_device_translation(config))
  assert run.mesh.devices.size == 8
  not_a = dict(train_batch, device=np.ones_like(train_batch['device']))
  losses = []
  for batch in (dict(train_batch), not_a):
    state = run.init(jax.random.key(0))
    losses.append(float(run.train_step(state, run.global_batch(batch), run.base_key(0))[1]['loss']))
  assert np.all(np.isfinite(losses)) and losses[0] != losses[1]


def test_a_run_without_a_translator_trains_its_own_on_its_own_train_split(tiny_data_dir,
                                                                          tmp_path):
  """With translation_p > 0 and no translation_workdir, the run trains a translator into
  WORKDIR/translator from the pairs of its own train split (here a cross-fit one: the held-out
  fold's pairs stay unseen), records it in its config, reuses it when resumed, and refuses one
  trained with other settings."""
  config = tiny_config(tiny_data_dir)
  config.train.num_epochs = 1
  config.data.cross_fit = '0/2'
  config.augment.translation_p = 0.5
  config.translator.update(dict(channels=(8, 8), batch_size=8, num_steps=20, eval_batch_size=8))
  workdir = str(tmp_path / 'run')
  metrics = train.train_and_evaluate(config, workdir)
  assert 0.0 <= metrics['accuracy'] <= 1.0

  own = os.path.join(workdir, fit.OWN_TRANSLATOR_DIR)
  with open(os.path.join(own, store.REPORT_JSON)) as file:
    report = json.load(file)
  used = sum(report['train_pairs'].values()) + sum(report['held_out_pairs'].values())
  cross_fit_split = datasets.prepare(fit.classifier_translator_config(config)).sources['train']
  whole_config = config.copy_and_resolve_references()
  whole_config.data.cross_fit = ''
  whole_split = datasets.prepare(whole_config).sources['train']
  assert used == len(pairs_lib.scan_source(cross_fit_split, 'a').pairs)
  assert used < len(pairs_lib.scan_source(whole_split, 'a').pairs)
  with open(os.path.join(workdir, 'config.json')) as file:
    assert json.load(file)['augment']['translation_workdir'] == own

  stamp = os.stat(os.path.join(own, store.TRANSLATOR_FILE)).st_mtime_ns
  assert fit.own_translator(config, workdir).augment.translation_workdir == own
  assert os.stat(os.path.join(own, store.TRANSLATOR_FILE)).st_mtime_ns == stamp
  config.translator.num_steps = 21
  with pytest.raises(ValueError, match='other translator'):
    fit.own_translator(config, workdir)
  config.augment.translation_workdir = own   # a named translator is used as it is
  assert fit.own_translator(config, workdir) is config
