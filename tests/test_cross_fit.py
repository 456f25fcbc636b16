"""Cross-fit (out-of-fold) teachers: config.data.cross_fit='k/K' trains on every recording group
but fold k, and the teacher-logit export gives each training record only the logits of the
teacher that never saw it, on the real tiny TFDS build with real trained teachers."""

import json
import os

import numpy as np
import pytest

from asc_jax import builder
from asc_jax import inference
from asc_jax import models
from asc_jax import parallel
from asc_jax import scoring
from asc_jax import train
from asc_jax.compress import teacher
from asc_jax.data import cross_fit
from asc_jax.data import datasets
from asc_jax.data import records

from conftest import tiny_config


@pytest.mark.parametrize('spec', ['', '1', '2/2', '-1/3', '0/1', 'a/b', '1/2/3'])
def test_malformed_cross_fit_names_the_key(spec):
  with pytest.raises(ValueError, match='config.data.cross_fit'):
    cross_fit.parse(spec)


def test_group_folds_keep_groups_whole_and_balance_them():
  groups = [f'g{index % 10}' for index in range(57)]
  folds = cross_fit.group_folds(groups, 3, seed=4)
  for group in set(groups):
    assert len({fold for fold, name in zip(folds, groups) if name == group}) == 1
  per_fold = [len({name for fold, name in zip(folds, groups) if fold == k}) for k in range(3)]
  assert sorted(per_fold) == [3, 3, 4]
  assert np.array_equal(folds, cross_fit.group_folds(groups, 3, seed=4))
  assert not np.array_equal(folds, cross_fit.group_folds(groups, 3, seed=5))


def test_the_folds_hold_out_every_training_group_exactly_once(tiny_data_dir):
  config = tiny_config(tiny_data_dir)
  full = datasets.prepare(config)
  groups = [group for group, in records.record_fields(full.sources['train'], 'identifier')]
  names = scoring.record_filenames(full.sources['train'])
  seen = []
  for k in range(2):
    config.data.cross_fit = f'{k}/2'
    held = datasets.prepare(config)
    kept = scoring.record_filenames(held.sources['train'])
    kept_groups = {group for group, in records.record_fields(held.sources['train'],
                                                              'identifier')}
    left_out = set(names) - set(kept)
    assert left_out and kept
    assert not kept_groups & {groups[names.index(name)] for name in left_out}
    assert held.num_examples['train'] == len(kept)
    assert sum(held.device_counts['train'].values()) == len(kept)
    for split in ('validation', 'test'):
      assert (scoring.record_filenames(held.sources[split]) ==
              scoring.record_filenames(full.sources[split]))
    seen.extend(left_out)
  assert sorted(seen) == sorted(names)
  config.data.cross_fit = f'0/{len(set(groups)) + 1}'
  with pytest.raises(ValueError, match='recording groups'):
    datasets.prepare(config)


def _teacher(config, workdir, spec):
  config = config.copy_and_resolve_references()
  config.data.cross_fit = spec
  train.train_and_evaluate(config, workdir)
  return workdir


def test_out_of_fold_teacher_logits(tiny_data_dir, tmp_path):
  config = tiny_config(tiny_data_dir)
  config.train.num_epochs = 1
  teachers = [_teacher(config, str(tmp_path / f'teacher{k}'), f'{k}/2') for k in range(2)]
  whole = _teacher(config, str(tmp_path / 'whole'), '')

  with pytest.raises(ValueError, match=r'fold\(s\) \[1\] of 2 are held out by no teacher'):
    teacher.export_teacher_logits(teachers[:1], str(tmp_path / 'one'))
  with pytest.raises(ValueError, match='mix config.data.cross_fit'):
    teacher.export_teacher_logits(teachers + [whole], str(tmp_path / 'mixed'))
  assert not (tmp_path / 'one').exists() and not (tmp_path / 'mixed').exists()

  out = teacher.export_teacher_logits(teachers, str(tmp_path / 'logits'))
  dataset = datasets.prepare(config)
  exported = teacher.load_teacher_logits(out, config, dataset)
  groups = [group for group, in records.record_fields(dataset.sources['train'], 'identifier')]
  folds = cross_fit.group_folds(groups, 2, seed=0)
  mesh = parallel.make_mesh()
  for k, workdir in enumerate(teachers):
    eval_step, state = builder.stored_model_scorer(
        models.build_model(config.model), inference.load_variables(workdir, 'latest'), mesh)
    own = scoring.score_split(eval_step, state, dataset.sources['train'],
                              batch_size=config.train.eval_batch_size,
                              device_names=dataset.device_names, mesh=mesh)['logits']
    np.testing.assert_allclose(exported[folds == k], own[folds == k], rtol=1e-5, atol=1e-5)
    assert np.abs(exported[folds != k] - own[folds != k]).max() > 1e-3
  # The metadata scores the out-of-fold logits against the labels: K-fold cross-validation.
  labels = np.asarray([label for label, in records.record_fields(dataset.sources['train'],
                                                                  'label')])
  with open(os.path.join(out, teacher.METADATA_FILE)) as file:
    metadata = json.load(file)
  scores = metadata['out_of_fold']
  assert metadata['checkpoint'] == 'latest'
  assert metadata['checkpoint_steps'] == [inference.checkpoint_step(workdir) for workdir in teachers]
  assert min(metadata['checkpoint_steps']) > 0
  assert scores['count'] == len(labels)
  assert scores['accuracy'] == pytest.approx(np.mean(exported.argmax(-1) == labels))
  assert sum(group['count'] for group in scores['per_device_group'].values()) <= len(labels)
