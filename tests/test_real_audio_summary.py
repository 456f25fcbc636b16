"""benchmarks/real_audio/summarize.py: per-run records, device-group accuracies and seed statistics."""

import csv
import json
import os
import subprocess
import sys

import pytest

from asc_jax import evaluate
from asc_jax import metric_writer
from asc_jax.configs import real_audio

from conftest import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'benchmarks', 'real_audio', 'summarize.py')
DEVICES = ('a', 'b', 'c', 's1', 's2', 's3', 's4', 's5', 's6')


def write_workdir(path, seed: int, accuracies: dict, validation=(), checkpoint='best') -> None:
  """An asc_jax workdir's eval_test.json (test scored with `checkpoint`) and config.json with 10
  test clips per device, and its metrics.jsonl with the (accuracy, log loss) validation scores
  `validation`."""
  os.makedirs(path)
  with open(os.path.join(path, metric_writer.HISTORY_FILE), 'w') as file:
    for step, (accuracy, log_loss) in enumerate(validation, start=1):
      file.write(json.dumps({'step': 10 * step, 'train/loss': 1.0}) + '\n')
      file.write(json.dumps({'step': 10 * step, 'validation/accuracy': accuracy,
                             'validation/log_loss': log_loss}) + '\n')
  per_device = {name: {'accuracy': value, 'count': 10, 'log_loss': 1.0}
                for name, value in accuracies.items()}
  overall = sum(accuracies.values()) / len(accuracies)
  with open(os.path.join(path, 'eval_test.json'), 'w') as file:
    json.dump(dict(accuracy=overall, log_loss=1.0, per_device=per_device, checkpoint=checkpoint,
                   step=100, split='test'), file)
  with open(os.path.join(path, 'config.json'), 'w') as file:
    json.dump(dict(seed=seed, model={}, train={}, augment={}, features={}), file)


def test_records_runs_and_summarizes_groups_over_seeds(tmp_path):
  results = tmp_path / 'results'
  results.mkdir()
  # seed 0: a 100 %, seen 50 % (one device at 100 %, four at 37.5 %), unseen 0 %.
  write_workdir(tmp_path / 'runs' / 'r0', 0, {'a': 1.0, 'b': 1.0, 'c': 0.375, 's1': 0.375,
                                              's2': 0.375, 's3': 0.375, 's4': 0.0, 's5': 0.0,
                                              's6': 0.0}, validation=[(0.4, 1.5), (0.6, 1.7), (0.5, 1.2)])
  write_workdir(tmp_path / 'runs' / 'r1', 1, {name: 0.5 for name in DEVICES},
                validation=[(0.8, 1.0)])
  subprocess.run([sys.executable, SCRIPT, f'--results_dir={results}',
                  f'--asc=recipe={tmp_path}/runs/r*'], check=True, capture_output=True)
  assert sorted(os.listdir(results)) == [
      'real_audio_asc_recipe_seed0.json', 'real_audio_asc_recipe_seed1.json',
      'real_audio_runs.csv', 'real_audio_summary.csv', 'real_audio_summary.json',
      'real_audio_summary.md']
  with open(results / 'real_audio_runs.csv') as file:
    rows = list(csv.DictReader(file))
  assert [(row['seed'], row['a'], row['seen'], row['unseen']) for row in rows] == [
      ('0', '100.00', '50.00', '0.00'), ('1', '50.00', '50.00', '50.00')]
  (entry,) = json.loads((results / 'real_audio_summary.json').read_text())['variants']
  assert entry['seeds'] == 2 and entry['checkpoint'] == 'best'
  assert entry['a']['mean'] == pytest.approx(0.75)
  assert entry['a']['std'] == pytest.approx(0.3535534)   # sample standard deviation
  assert entry['unseen']['mean'] == pytest.approx(0.25)
  # validation: the best accuracy and the lowest log loss of each run, whatever their steps.
  assert [(row['validation_accuracy'], row['validation_log_loss']) for row in rows] == [
      ('60.00', '1.200'), ('80.00', '1.000')]
  assert entry['validation_accuracy']['mean'] == pytest.approx(0.7)
  assert entry['validation_log_loss']['mean'] == pytest.approx(1.1)
  assert '70.0 / 1.10' in (results / 'real_audio_summary.md').read_text()
  # The records stand without the workdirs: rebuilding the tables needs only results/.
  for name in ('r0', 'r1'):
    os.remove(tmp_path / 'runs' / name / 'eval_test.json')
  subprocess.run([sys.executable, SCRIPT, f'--results_dir={results}'], check=True,
                 capture_output=True)
  assert json.loads((results / 'real_audio_summary.json').read_text())['variants'] == [entry]


def test_rescored_latest_checkpoint_is_recorded_as_final(tmp_path):
  results = tmp_path / 'results'
  results.mkdir()
  write_workdir(tmp_path / 'runs' / 'r0', 0, {name: 0.5 for name in DEVICES}, checkpoint='final')
  write_workdir(tmp_path / 'runs' / 'r1', 1, {name: 0.7 for name in DEVICES}, checkpoint='latest')
  subprocess.run([sys.executable, SCRIPT, f'--results_dir={results}',
                  f'--asc=recipe={tmp_path}/runs/r*'], check=True, capture_output=True)
  (entry,) = json.loads((results / 'real_audio_summary.json').read_text())['variants']
  assert entry['checkpoint'] == 'final' and entry['seeds'] == 2
  assert entry['overall']['mean'] == pytest.approx(0.6)


def test_unfinished_workdir_is_named(tmp_path):
  os.makedirs(tmp_path / 'runs' / 'r0')
  failed = subprocess.run([sys.executable, SCRIPT, f'--results_dir={tmp_path}',
                           f'--asc=plain={tmp_path}/runs/r*'], capture_output=True, text=True)
  assert failed.returncode != 0
  assert 'r0: no eval_test.json' in failed.stderr


def test_files_beside_the_workdirs_are_not_taken_for_runs(tmp_path):
  write_workdir(tmp_path / 'runs' / 'r0', 0, {name: 0.5 for name in DEVICES})
  (tmp_path / 'runs' / 'r0.out').write_text('the run\'s console log\n')
  subprocess.run([sys.executable, SCRIPT, f'--results_dir={tmp_path / "results"}',
                  f'--asc=plain={tmp_path}/runs/r*'], check=True, capture_output=True)
  with open(tmp_path / 'results' / 'real_audio_runs.csv') as file:
    assert [row['seed'] for row in csv.DictReader(file)] == ['0']


def write_compressed(path, source: str, accuracy: float, source_seed=None) -> None:
  """A compress workdir made from `source`: like every compress run, its own config.json says
  seed 0 whatever the source's seed; its report names the source's seed when given (reports
  written before 2026-12-07 lack it)."""
  os.makedirs(path)
  metrics = dict(accuracy=accuracy, log_loss=1.0, per_device={
      name: {'accuracy': accuracy, 'count': 10, 'log_loss': 1.0} for name in DEVICES})
  report = dict(source_workdir=str(source), config={}, source=dict(metrics=metrics),
                export=dict(metrics=metrics, size=29517))
  if source_seed is not None:
    report['source_seed'] = source_seed
  with open(os.path.join(path, 'compress_report.json'), 'w') as file:
    json.dump(report, file)
  with open(os.path.join(path, 'config.json'), 'w') as file:
    json.dump(dict(seed=0), file)


def test_compressed_models_are_recorded_under_their_source_seed(tmp_path):
  results = tmp_path / 'results'
  results.mkdir()
  for seed, accuracy in ((0, 0.6), (3, 0.5)):
    write_workdir(tmp_path / 'runs' / f's{seed}', seed, {name: accuracy for name in DEVICES})
    write_compressed(tmp_path / 'runs' / f's{seed}_int8', tmp_path / 'runs' / f's{seed}', accuracy)
  subprocess.run([sys.executable, SCRIPT, f'--results_dir={results}',
                  f'--compressed=recipe_int8={tmp_path}/runs/s?_int8'], check=True,
                 capture_output=True)
  recorded = {name: json.loads((results / name).read_text())['export']['test']['overall']
              for name in os.listdir(results) if name.startswith('real_audio_compressed_')}
  assert recorded == {'real_audio_compressed_recipe_int8_seed0.json': 0.6,
                      'real_audio_compressed_recipe_int8_seed3.json': 0.5}


def test_a_report_with_source_seed_needs_no_source_run(tmp_path):
  write_compressed(tmp_path / 'runs' / 's2_int8', tmp_path / 'gone', 0.55, source_seed=2)
  subprocess.run([sys.executable, SCRIPT, f'--results_dir={tmp_path}',
                  f'--compressed=recipe_int8={tmp_path}/runs/s2_int8'], check=True,
                 capture_output=True)
  recorded = json.loads((tmp_path / 'real_audio_compressed_recipe_int8_seed2.json').read_text())
  assert recorded['seed'] == 2 and recorded['export']['test']['overall'] == 0.55


def test_two_runs_of_one_seed_under_one_label_are_refused(tmp_path):
  for name in ('one_device', 'two_devices'):
    write_workdir(tmp_path / 'runs' / name, 0, {device: 0.5 for device in DEVICES})
  failed = subprocess.run([sys.executable, SCRIPT, f'--results_dir={tmp_path}',
                           f'--asc=plain={tmp_path}/runs/*'], capture_output=True, text=True)
  assert failed.returncode != 0
  assert 'one_device and ' in failed.stderr and 'are both seed 0' in failed.stderr
  assert not list(tmp_path.glob('real_audio_asc_*'))


def test_benchmark_groups_agree_with_the_config():
  module = load_script(os.path.join(ROOT, 'benchmarks', 'real_audio',
                                    'train_torch_reference.py'))
  assert module.GROUPS == evaluate.parse_device_groups(real_audio.DEVICE_GROUPS)


def test_group_accuracies_from_counts_or_plain_accuracies():
  module = load_script(SCRIPT)
  counted = module.group_accuracies({'b': {'accuracy': 1.0, 'count': 30},
                                     'c': {'accuracy': 0.0, 'count': 10}})
  assert counted == {'seen': pytest.approx(0.75)}
  plain = module.group_accuracies({'a': 0.5, 's4': 0.2, 's5': 0.4})   # compress_report.json
  assert plain == {'a': pytest.approx(0.5), 'unseen': pytest.approx(0.3)}


def test_cross_validation_scores_are_recorded_and_tabled(tmp_path):
  results = tmp_path / 'results'
  results.mkdir()
  write_workdir(tmp_path / 'runs' / 'r0', 0, {name: 0.5 for name in DEVICES})
  logits_dir = tmp_path / 'cv'
  logits_dir.mkdir()
  out_of_fold = dict(accuracy=0.6093, log_loss=1.346, count=1999, per_device_group={
      'a': dict(accuracy=0.5993, log_loss=1.37, count=1360),
      'seen': dict(accuracy=0.6307, log_loss=1.30, count=639)})
  metadata = dict(cross_fit=['0/3', '1/3', '2/3'], teachers=['t0', 't1', 't2'],
                  out_of_fold=out_of_fold)     # written before the checkpoint was recorded
  (logits_dir / 'teacher_logits.json').write_text(json.dumps(metadata))
  best_dir = tmp_path / 'cv_best'
  best_dir.mkdir()
  (best_dir / 'teacher_logits.json').write_text(json.dumps(dict(
      metadata, checkpoint='best', checkpoint_steps=[620, 775, 1550],
      out_of_fold=dict(out_of_fold, accuracy=0.5418))))
  subprocess.run([sys.executable, SCRIPT, f'--results_dir={results}',
                  f'--asc=recipe={tmp_path}/runs/r*', f'--cross_validation=recipe={logits_dir}',
                  f'--cross_validation=recipe_best={best_dir}'], check=True, capture_output=True)
  recorded = json.loads((results / 'real_audio_cross_validation_recipe.json').read_text())
  assert recorded['accuracy'] == 0.6093 and recorded['folds'] == ['0/3', '1/3', '2/3']
  assert recorded['checkpoint'] == 'final'
  best = json.loads((results / 'real_audio_cross_validation_recipe_best.json').read_text())
  assert best['checkpoint'] == 'best' and best['checkpoint_steps'] == [620, 775, 1550]
  table = (results / 'real_audio_cross_validation.md').read_text()
  assert '| recipe | final | 3 | 1999 | 60.93 | 1.346 | 59.93 | 63.07 |' in table
  assert '| recipe_best | best | 3 | 1999 | 54.18 | 1.346 | 59.93 | 63.07 |' in table
  del metadata['out_of_fold']
  (logits_dir / 'teacher_logits.json').write_text(json.dumps(metadata))
  failed = subprocess.run([sys.executable, SCRIPT, f'--results_dir={results}',
                           f'--cross_validation=whole={logits_dir}'], capture_output=True, text=True)
  assert failed.returncode != 0 and 'no out-of-fold scores' in failed.stderr
