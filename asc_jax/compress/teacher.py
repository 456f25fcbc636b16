"""Teacher logits for knowledge distillation: exported once from trained workdirs, checked on load.

Files (in one directory, never pickled):
  teacher_logits.npz   'filenames' (unicode [N]) and 'logits' (float32 [N, classes]) of every
                       record of the train split; with several teachers, their mean logits
                       (with cross-fit teachers, config.data.cross_fit, the mean of those that
                       held the record out: out-of-fold logits);
  teacher_logits.json  dataset, class names, device names, clip length, feature parameters,
                       the teacher workdirs and the checkpoint scored ('latest' = the final
                       weights, or 'best' by validation) with each one's step; with cross-fit
                       teachers also `out_of_fold`: accuracy and log loss of the out-of-fold
                       logits against the labels, overall and per device group (K-fold
                       cross-validation over the whole train split). A student
                       loads the logits only when its dataset has the same classes and front end,
                       and every one of its training files is there.

  python -m asc_jax.compress.teacher --workdir=TEACHER[,TEACHER2...] --out=DIR
"""

import io
import json
import os
from typing import Optional, Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from asc_jax import builder
from asc_jax import console
from asc_jax import distributed
from asc_jax import evaluate
from asc_jax import fileio
from asc_jax import host_memory
from asc_jax import inference
from asc_jax import models
from asc_jax import parallel
from asc_jax import run_files
from asc_jax import scoring
from asc_jax.compress import distillation
from asc_jax.data import cross_fit
from asc_jax.data import datasets
from asc_jax.data import records

LOGITS_FILE = 'teacher_logits.npz'
METADATA_FILE = 'teacher_logits.json'


def _metadata(config, dataset: datasets.PreparedDataset, workdirs: Sequence[str]) -> dict:
  return dict(dataset=config.data.name, builder_config=config.data.builder_config,
              class_names=list(dataset.class_names), device_names=list(dataset.device_names),
              duration_s=float(dataset.feature_params.get('duration_s',
                                                          config.features.duration_s)),
              feature_params=dataset.feature_params,
              teachers=[os.path.abspath(workdir) for workdir in workdirs],
              num_examples=int(dataset.num_examples['train']))


def _full_train_config(config):
  """(config reading the whole train split, (k, K, cross_fit_seed) or None): a teacher's fold."""
  spec = config.data.get('cross_fit', '')
  if not spec:
    return config, None
  full = config.copy_and_resolve_references()
  full.data.cross_fit = ''
  return full, cross_fit.parse(spec) + (int(config.data.get('cross_fit_seed', 0)),)


def _held_out(groups: Sequence[str], fold: Optional[tuple]) -> np.ndarray:
  """bool [train records]: the records (of recording groups `groups`) this teacher never trained
  on; all of them for a whole-split teacher (fold None)."""
  if fold is None:
    return np.ones(len(groups), dtype=bool)
  k, folds, seed = fold
  return cross_fit.group_folds(groups, folds, seed) == k


def _check_out_of_fold(workdirs: Sequence[str], folds: Sequence[Optional[tuple]]) -> None:
  """Raises, before anything is scored, unless the teachers are all whole-split teachers or all
  cross-fit teachers of one K and seed whose folds k cover 0..K-1 (every record held out)."""
  kinds = {None if fold is None else fold[1:] for fold in folds}
  if len(kinds) > 1:
    raise ValueError(f'teachers {list(workdirs)} mix config.data.cross_fit settings '
                     f'{sorted(str(fold) for fold in folds)}: pass either whole-split teachers or '
                     'cross-fit teachers of one K and cross_fit_seed (k = 0..K-1).')
  if folds[0] is not None:
    folds_count = folds[0][1]
    missing = sorted(set(range(folds_count)) - {fold[0] for fold in folds})
    if missing:
      raise ValueError(f'the training records of fold(s) {missing} of {folds_count} are held out '
                       f'by no teacher in {list(workdirs)}: train them too '
                       f'(config.data.cross_fit=k/{folds_count}) and pass every fold.')


def _out_of_fold_scores(logits: np.ndarray, scored: dict,
                        dataset: datasets.PreparedDataset) -> dict:
  """Accuracy and log loss of out-of-fold logits, overall and per device group: the K-fold
  cross-validation score of the teachers' recipe over the whole train split."""
  metrics = evaluate.compute_metrics(
      logits, scored['label'], scored['device'], dataset.class_names, dataset.device_names,
      evaluate.parse_device_groups(dataset.device_groups))
  return dict(accuracy=metrics['accuracy'], log_loss=metrics['log_loss'], count=metrics['count'],
              per_device_group={name: dict(accuracy=group['accuracy'], log_loss=group['log_loss'],
                                           count=group['count'])
                                for name, group in metrics['per_device_group'].items()})


def export_teacher_logits(workdirs: Sequence[str], out_dir: str, which: str = 'latest',
                          mesh: Optional[jax.sharding.Mesh] = None) -> str:
  """Scores the train split with each teacher workdir and writes their mean logits to out_dir.

  Cross-fit teachers (config.data.cross_fit='k/K', one per k) give out-of-fold logits: each
  record gets the mean of the teachers that held it out, never a teacher that trained on it.
  """
  if not workdirs:
    raise ValueError('no teacher workdir given: pass at least one trained workdir.')
  mesh = mesh or parallel.make_mesh()
  configs, folds = zip(*(_full_train_config(run_files.load_config(workdir))
                         for workdir in workdirs))
  _check_out_of_fold(workdirs, folds)
  total, counts, metadata, filenames, steps = None, None, None, None, []
  for workdir, config, fold in zip(workdirs, configs, folds):
    dataset = distributed.prepare_dataset(config)
    this = _metadata(config, dataset, workdirs)
    if metadata is not None and any(this[key] != metadata[key] for key in
                                    ('dataset', 'builder_config', 'class_names', 'feature_params')):
      raise ValueError(f'teacher {workdir} was trained on other data or features than '
                       f'{workdirs[0]}: an ensemble needs teachers of one dataset and front end.')
    metadata = this
    steps.append(inference.checkpoint_step(workdir, which))
    eval_step, state = builder.stored_model_scorer(
        models.build_model(config.model), inference.load_variables(workdir, which), mesh)
    scored = scoring.score_split(eval_step, state, dataset.sources['train'],
                                 batch_size=config.train.eval_batch_size,
                                 device_names=dataset.device_names, mesh=mesh, name='teacher')
    if filenames is None:
      filenames, groups = zip(*records.record_fields(dataset.sources['train'], 'filename',
                                                     'identifier'))
    held_out = _held_out(groups, fold)
    logits = np.where(held_out[:, None], scored['logits'].astype(np.float64), 0.0)
    total = logits if total is None else total + logits
    counts = held_out.astype(np.int64) if counts is None else counts + held_out
  mean_logits = (total / counts[:, None]).astype(np.float32)
  metadata.update(checkpoint=which, checkpoint_steps=steps)
  metadata['cross_fit'] = [None if fold is None else f'{fold[0]}/{fold[1]}' for fold in folds]
  if folds[0] is not None:
    metadata['out_of_fold'] = _out_of_fold_scores(mean_logits, scored, dataset)
  buffer = io.BytesIO()
  np.savez(buffer, filenames=np.asarray(filenames, dtype=str), logits=mean_logits)
  if jax.process_index() == 0:
    fileio.atomic_write_bytes(os.path.join(out_dir, LOGITS_FILE), buffer.getvalue())
    fileio.atomic_write_json(os.path.join(out_dir, METADATA_FILE), metadata)
  return out_dir


def load_teacher_logits(directory: str, config, dataset: datasets.PreparedDataset) -> np.ndarray:
  """float32 [train records, classes]: the teacher logits of each record of dataset's train split.

  Raises ValueError naming the mismatch when the logits were made for other classes, another
  front end or another dataset, or lack one of the student's training files.
  """
  metadata_path = os.path.join(directory, METADATA_FILE)
  logits_path = os.path.join(directory, LOGITS_FILE)
  for path in (metadata_path, logits_path):
    if not os.path.exists(path):
      raise FileNotFoundError(f'{path} is missing: export teacher logits first '
                              '(python -m asc_jax.compress.teacher --workdir=... --out=...).')
  with open(metadata_path, encoding='utf-8') as file:
    metadata = json.load(file)
  expected = _metadata(config, dataset, metadata['teachers'])
  for key in ('class_names', 'duration_s', 'feature_params'):
    if metadata[key] != expected[key]:
      raise ValueError(f'{metadata_path}: {key} is {metadata[key]!r} but the student\'s dataset '
                       f'{config.data.name} has {expected[key]!r}; export the teacher logits again '
                       'with a teacher trained on the same classes and features.')
  with np.load(logits_path, allow_pickle=False) as stored:
    filenames, logits = stored['filenames'], stored['logits']
  row_of = {str(name): row for row, name in enumerate(filenames)}
  student_files = scoring.record_filenames(dataset.sources['train'])
  missing = [name for name in student_files if name not in row_of]
  if missing:
    raise ValueError(f'{logits_path} has no logits for {len(missing)} of the student\'s training '
                     f'files (first: {missing[0]!r}); export the teacher logits on this dataset.')
  return logits[[row_of[name] for name in student_files]]


def load_teacher_targets(directory: str, config, dataset: datasets.PreparedDataset) -> np.ndarray:
  """softmax(teacher logits / config.distill.temperature) per train record (load_teacher_logits)."""
  logits = load_teacher_logits(directory, config, dataset)
  return np.asarray(distillation.teacher_targets(jnp.asarray(logits), config.distill.temperature))


def define_flags() -> None:
  """The CLI's flags; defined only when run as a program, so importing this module defines none."""
  flags.DEFINE_list('workdir', None, 'Trained teacher workdir(s), comma-separated.')
  flags.DEFINE_string('out', None, 'Directory for teacher_logits.npz and .json.')
  flags.DEFINE_enum('which', 'latest', ['latest', 'best'], 'Teacher checkpoint.')


def main(argv):
  values = flags.FLAGS
  if len(argv) > 1 or not values.workdir or not values.out:
    raise app.UsageError('usage: python -m asc_jax.compress.teacher --workdir=DIR[,DIR] --out=DIR')
  console.setup()
  out = export_teacher_logits(values.workdir, values.out, values.which)
  with open(os.path.join(out, METADATA_FILE), encoding='utf-8') as file:
    scores = json.load(file).get('out_of_fold')
  if scores:
    console.note(f'out-of-fold (cross-validation) accuracy {100 * scores["accuracy"]:.2f} %, '
                 f'log loss {scores["log_loss"]:.3f} on {scores["count"]} training clips')
  print(os.path.join(out, LOGITS_FILE))


if __name__ == '__main__':
  host_memory.reexec_with_huge_pages()
  define_flags()
  app.run(main)
