"""The compression run for real on the tiny synthetic set: a trained source workdir is
distilled, pruned and quantized into a new workdir, exported, and re-run by the NumPy runtime."""

import json
import os
import shutil

import jax
import ml_collections
import numpy as np
import pytest

from asc_jax import builder
from asc_jax import checkpointing
from asc_jax import distributed
from asc_jax import inference
from asc_jax import run_files
from asc_jax import train
from asc_jax.compress import int8_runtime
from asc_jax.compress import pruning
from asc_jax.compress import run as compress_run
from asc_jax.compress import teacher

from conftest import load_config_file
from conftest import tiny_config

CONFIGS = os.path.join(os.path.dirname(__file__), '..', 'configs')


@pytest.fixture(scope='module')
def compressed(tiny_data_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp('compress')
  config = tiny_config(tiny_data_dir)
  config.train.num_epochs = 2
  config.seed = 1   # unlike the compress config's seed 0: the report must name the source's.
  source = str(root / 'source')
  dataset = distributed.prepare_dataset(config)
  run_files.write_run_files(source, config, run_files.dataset_info(dataset))
  train.fit(config, source, dataset, builder.build(config, dataset, jax.devices()[:1]))
  source_files = sorted(os.listdir(checkpointing.checkpoint_dir(source)))
  compress = load_config_file(os.path.join(CONFIGS, 'compress.py'), 'tiny')
  workdir = str(root / 'student')
  report = compress_run.run(compress, source, workdir, devices=jax.devices()[:1])
  return dict(report=report, source=source, workdir=workdir, compress=compress,
              source_files=source_files, config=config)


def test_report_sizes_accuracy_and_export_agreement(compressed):
  report = compressed['report']
  with open(os.path.join(compressed['workdir'], compress_run.REPORT_JSON)) as file:
    assert json.load(file)['prediction_agreement'] == report['prediction_agreement']
  assert report['source_seed'] == 1
  assert run_files.load_config(compressed['workdir']).seed == 0
  sizes = {part: report[part]['size']['bytes_dcase2021'] for part in ('source', 'export')}
  assert sizes['export'] < sizes['source'] / 3
  assert report['prediction_agreement'] >= 0.95 and report['max_logit_difference'] < 0.1
  for part in ('source', 'student', 'export'):
    assert set(report[part]['metrics']['per_device']) == {'a', 'b', 'c', 's1', 's2', 's3', 's4',
                                                          's5', 's6'}
  markdown = open(os.path.join(compressed['workdir'], compress_run.REPORT_MARKDOWN)).read()
  assert '| bytes_dcase2021 |' in markdown and '| accuracy s4 |' in markdown


def test_sparsity_target_reached_and_pruned_weights_are_zero_in_the_export(compressed):
  variables = inference.load_variables(compressed['workdir'])
  prunable = pruning.default_prunable()
  per_layer = pruning.sparsity_report(variables['params'], prunable)
  target = compressed['compress'].prune.target_sparsity
  assert per_layer and all(abs(value - target) < 0.01 for value in per_layer.values())
  runtime = int8_runtime.Int8Model.load(os.path.join(compressed['workdir'], 'export'))
  for name, value in per_layer.items():
    stored = runtime.arrays[f'params/{name}']
    assert np.mean(stored == 0) >= value


def test_rerun_resumes_without_touching_the_source(compressed):
  again = compress_run.run(compressed['compress'], compressed['source'], compressed['workdir'],
                           devices=jax.devices()[:1])
  assert again['student'] == compressed['report']['student']
  assert sorted(os.listdir(checkpointing.checkpoint_dir(compressed['source']))) == \
      compressed['source_files']
  with pytest.raises(ValueError, match='NEW workdir'):
    compress_run.run(compressed['compress'], compressed['source'], compressed['source'])


def test_teacher_logits_are_checked_against_the_student_dataset(compressed, tmp_path):
  directory = str(tmp_path / 'teacher')
  shutil.copytree(os.path.join(compressed['workdir'], compress_run.TEACHER_DIR), directory)
  config = compressed['config']
  dataset = distributed.prepare_dataset(config)
  logits = teacher.load_teacher_logits(directory, config, dataset)
  assert logits.shape == (dataset.num_examples['train'], 10) and logits.dtype == np.float32
  with open(os.path.join(directory, teacher.METADATA_FILE)) as file:
    metadata = json.load(file)
  metadata['feature_params']['n_mels'] += 1
  with open(os.path.join(directory, teacher.METADATA_FILE), 'w') as file:
    json.dump(metadata, file)
  with pytest.raises(ValueError, match='feature_params'):
    teacher.load_teacher_logits(directory, config, dataset)


def test_student_config_of_a_source_older_than_an_augmentation_keeps_it_off(tiny_data_dir):
  source = tiny_config(tiny_data_dir)
  source.augment.mixup_alpha = 0.2
  older = source.to_dict()
  del older['augment']['filter_augment_p']                # a workdir from before FilterAugment.
  compress = load_config_file(os.path.join(CONFIGS, 'compress.py'), 'tiny')
  student = compress_run.student_config(ml_collections.ConfigDict(older), compress)
  assert student.augment.filter_augment_p == 0.0
  assert student.augment.mixup_alpha == 0.2


def test_the_student_trains_with_the_source_runs_device_translation(compressed, tmp_path):
  """A source trained with device translation hands its translator to the student's training:
  here one whose translator is gone, which compression must report instead of training without."""
  source = str(tmp_path / 'source')
  shutil.copytree(compressed['source'], source)
  with open(os.path.join(source, 'config.json')) as file:
    config = json.load(file)
  config['augment'].update(translation_p=0.5, translation_workdir=str(tmp_path / 'gone'))
  with open(os.path.join(source, 'config.json'), 'w') as file:
    json.dump(config, file)
  with pytest.raises(FileNotFoundError, match='gone'):
    compress_run.run(compressed['compress'], source, str(tmp_path / 'student'),
                     devices=jax.devices()[:1])
  assert not (tmp_path / 'student').exists()


def test_export_agreement_counts_differing_predictions_and_their_margins():
  student = np.array([[2.0, 1.0, 0.0], [0.0, 1.00, 0.98], [5.0, 0.0, 0.0]], np.float32)
  exported = np.array([[2.0, 1.0, 0.0], [0.0, 0.97, 0.99], [5.0, 0.0, 0.1]], np.float32)
  agreement = compress_run.export_agreement(exported, student)
  assert agreement['prediction_agreement'] == pytest.approx(2 / 3)
  assert agreement['disagreements'] == 1
  assert agreement['max_disagreement_margin'] == pytest.approx(0.02, abs=1e-6)
  assert agreement['max_logit_difference'] == pytest.approx(0.1, abs=1e-6)
  assert compress_run.export_agreement(student, student)['max_disagreement_margin'] == 0.0


def test_main_training_distills_from_exported_teacher_logits(compressed, tmp_path):
  """config.distill in main training: a teacher that always answers class 3 (alpha 1, T 1) is
  learnt from scratch, so nearly every test clip ends up labelled class 3; no directory is an error."""
  exported = os.path.join(compressed['workdir'], compress_run.TEACHER_DIR)
  directory = tmp_path / 'teacher'
  directory.mkdir()
  with np.load(os.path.join(exported, teacher.LOGITS_FILE)) as stored:
    filenames, logits = stored['filenames'], stored['logits']
  constant = np.zeros_like(logits)
  constant[:, 3] = 30.0
  np.savez(directory / teacher.LOGITS_FILE, filenames=filenames, logits=constant)
  with open(os.path.join(exported, teacher.METADATA_FILE)) as source:
    (directory / teacher.METADATA_FILE).write_text(source.read())
  config = compressed['config'].copy_and_resolve_references()
  config.train.num_epochs = 3
  config.distill.update(dict(alpha=1.0, temperature=1.0, teacher_logits=''))
  with pytest.raises(ValueError, match='teacher_logits'):
    train.train_and_evaluate(config, str(tmp_path / 'no_teacher'))
  assert not (tmp_path / 'no_teacher').exists()   # refused before anything is written
  config.distill.teacher_logits = str(directory)
  train.train_and_evaluate(config, str(tmp_path / 'student'))
  with open(tmp_path / 'student' / 'predictions_test.csv') as file:
    rows = [line.rstrip('\n').split('\t') for line in file]
  class_names = rows[0][2:]
  predicted = [row[1] for row in rows[1:]]
  assert predicted.count(class_names[3]) / len(predicted) > 0.8  # one class in 10 by the labels
