"""The compress command's work: from a trained workdir to a distilled, pruned, int8-quantized
student in a NEW workdir, trained by the one builder and loop (asc_jax.builder, asc_jax.train.fit):
the warm start is the run's initial state, distillation its loss, magnitude pruning an optax
transformation appended to its optimizer, and the sparsity report a hook.

  1. the student config: the source run's config with the compression config's train overrides
     and its prune, distill and quant sections (written to the new workdir's config.json);
  2. teacher logits for the train split (exported from --teacher_workdir, read from
     --teacher_logits, or, when neither is given, from the source model itself);
  3. int8 activation scales calibrated on the source model (weights already int8);
  4. fine-tuning from the source weights with the distillation loss, magnitude pruning in the
     optimizer and int8 quantization-aware training (or float training and post-training
     calibration when quant.qat is False); resumable like any training run;
  5. the final model exported in its integer form (workdir/export), re-run with the NumPy
     integer runtime, and a report (compress_report.json and .md): DCASE2021 and DCASE2022
     sizes and per-device accuracy of the source, the quantized student and the export.
The source workdir is only read.

  python -m asc_jax.compress --config=configs/compress.py:mod8 --source_workdir=RUN \
      --workdir=RUN_compressed [--teacher_workdir=TEACHER[,TEACHER2]]
"""

import os
from typing import Any, Optional, Sequence

import jax
import ml_collections
import numpy as np

from asc_jax import builder
from asc_jax import complexity
from asc_jax import console
from asc_jax import defaults
from asc_jax import distributed
from asc_jax import evaluate
from asc_jax import fileio
from asc_jax import hooks
from asc_jax import inference
from asc_jax import loop
from asc_jax import metric_writer
from asc_jax import models
from asc_jax import parallel
from asc_jax import run_files
from asc_jax import scoring
from asc_jax import train
from asc_jax.augment import translation as augment_translation
from asc_jax.compress import distillation
from asc_jax.compress import export
from asc_jax.compress import int8_runtime
from asc_jax.compress import pruning
from asc_jax.compress import quantization
from asc_jax.compress import teacher
from asc_jax.data import input_pipeline

REPORT_JSON = 'compress_report.json'
REPORT_MARKDOWN = 'compress_report.md'
ACTIVATION_SCALES_FILE = 'activation_scales.json'
TEACHER_DIR = 'teacher'


def student_config(source: ml_collections.ConfigDict, compress: ml_collections.ConfigDict
                   ) -> ml_collections.ConfigDict:
  """The source run's config with compress.train overrides and its prune/distill/quant sections."""
  config = ml_collections.ConfigDict(source.to_dict())
  # Augmentations added to asc_jax after the source run was trained stay off.
  augment = defaults.augment_section()
  augment.update(config.augment)
  config.augment = augment
  for key, value in compress.train.items():
    if key not in config.train:
      raise ValueError(f'compression config key train.{key} is not a config.train key of the '
                       f'source run; known keys: {", ".join(sorted(config.train))}.')
    config.train[key] = value
  for section in ('prune', 'distill', 'quant'):
    config[section] = ml_collections.ConfigDict(compress[section].to_dict())
  config.seed = compress.seed
  if compress.data_dir:
    config.data.data_dir = compress.data_dir
  return config


class SparsityReport:
  """Hook: per-kernel and overall sparsity scalars, every `every_steps` and at the end."""

  def __init__(self, writer: metric_writer.MetricWriter, every_steps: int):
    self.writer, self.every_steps = writer, every_steps

  def __call__(self, context: loop.StepContext) -> None:
    if not hooks.is_due(context, self.every_steps):
      return
    params = jax.device_get(context.state.params)
    self.writer.write_scalars(context.step, {
        'sparsity/overall': pruning.overall_sparsity(params),
        **{f'sparsity/{name}': value for name, value in pruning.sparsity_report(params).items()}})


def score_model(model: Any, variables: dict, dataset, split: str, batch_size: int,
                mesh: jax.sharding.Mesh) -> dict[str, np.ndarray]:
  """Scored arrays (asc_jax.scoring) of stored weights on every record of `split`."""
  eval_step, state = builder.stored_model_scorer(model, variables, mesh)
  return scoring.score_split(eval_step, state, dataset.sources[split], batch_size=batch_size,
                             device_names=dataset.device_names, mesh=mesh, name=split)


def calibration_batches(dataset, config: ml_collections.ConfigDict) -> list[np.ndarray]:
  """The first quant.calibration_batches batches of the train split, in record order."""
  batches = input_pipeline.eval_batches(dataset.sources['train'],
                                       batch_size=config.train.eval_batch_size,
                                       device_names=dataset.device_names)
  chosen = []
  for batch in batches:
    if len(chosen) == config.quant.calibration_batches:
      break
    chosen.append(batch['logmel'][batch['mask']])
  return chosen


def teacher_probabilities(config, dataset, workdir: str, source_workdir: str,
                          teacher_workdirs: Sequence[str], teacher_logits_dir: str,
                          mesh: jax.sharding.Mesh) -> np.ndarray:
  """softmax(teacher logits / T) per train record, from teacher_logits_dir (or
  config.distill.teacher_logits); otherwise exported first from the teacher (or source) workdirs."""
  directory = teacher_logits_dir or config.distill.get('teacher_logits', '')
  if not directory:
    directory = os.path.join(workdir, TEACHER_DIR)
    if not os.path.exists(os.path.join(directory, teacher.METADATA_FILE)):
      teacher.export_teacher_logits(list(teacher_workdirs) or [source_workdir], directory,
                                    mesh=mesh)
  return teacher.load_teacher_targets(directory, config, dataset)


def _accuracy_summary(metrics: dict) -> dict:
  return dict(accuracy=metrics['accuracy'], log_loss=metrics['log_loss'],
              per_device={name: row['accuracy'] for name, row in metrics['per_device'].items()})


def _size_summary(report: dict) -> dict:
  keys = ('params', 'nonzero_params', 'bytes_dcase2021', 'kb_dcase2021', 'kib_dcase2021',
          'bytes_dcase2022', 'kb_dcase2022', 'kib_dcase2022', 'macs')
  return {key: report[key] for key in keys}


def format_markdown(report: dict) -> str:
  """The before/after table of a compression report."""
  columns = [('fp32 source', report['source']), ('quantized student', report['student']),
             ('int8 export (NumPy runtime)', report['export'])]
  lines = ['| | ' + ' | '.join(name for name, _ in columns) + ' |',
           '|---|' + '---|' * len(columns)]

  def row(label, values):
    lines.append(f'| {label} | ' + ' | '.join(values) + ' |')

  def size(key, fmt):
    row(key, [fmt.format(column['size'][key]) if 'size' in column else '' for _, column in columns])

  size('params', '{:,}')
  size('nonzero_params', '{:,}')
  size('bytes_dcase2021', '{:,}')
  size('kib_dcase2021', '{:.2f} KB')
  size('bytes_dcase2022', '{:,}')
  size('macs', '{:,}')
  row('accuracy', [f'{100 * c["metrics"]["accuracy"]:.2f} %' for _, c in columns])
  row('log loss', [f'{c["metrics"]["log_loss"]:.3f}' for _, c in columns])
  for device in report['source']['metrics']['per_device']:
    row(f'accuracy {device}', [f'{100 * c["metrics"]["per_device"].get(device, float("nan")):.2f} %'
                               for _, c in columns])
  lines += ['', f'KB = 1024 bytes (DCASE2021 rule: non-zero entries at their stored width). '
            f'Export and quantized student agree on {100 * report["prediction_agreement"]:.2f} % '
            f'of test predictions (largest logit difference {report["max_logit_difference"]:.3f})'
            + (f'; on the clip(s) where they differ ({report["disagreements"]}), the student\'s '
               f'top-2 logit margin is at most {report["max_disagreement_margin"]:.3f} (near-ties).'
               if report['disagreements'] else '.')]
  return '\n'.join(lines) + '\n'


def run(compress: ml_collections.ConfigDict, source_workdir: str, workdir: str,
        teacher_workdirs: Sequence[str] = (), teacher_logits_dir: str = '',
        which: str = 'latest', devices: Optional[Sequence[jax.Device]] = None) -> Optional[dict]:
  """Runs the whole pipeline on `devices` (default: all); returns the report, or None when a
  stop signal ended training (run it again to resume)."""
  if os.path.abspath(source_workdir) == os.path.abspath(workdir):
    raise ValueError(f'--workdir {workdir} is the source workdir: compression writes a NEW '
                     'workdir and never edits the trained one; give another --workdir.')
  source_config = run_files.load_config(source_workdir)
  source_seed = int(source_config.seed)   # student_config sets the compress run's own seed.
  config = student_config(source_config, compress)
  dataset = distributed.prepare_dataset(config)
  translation = augment_translation.load_device_translation(config)   # the source's, if any
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    run_files.write_run_files(workdir, config, run_files.dataset_info(dataset))
  mesh = parallel.make_mesh(devices)
  network = models.build_model(config.model)
  source_variables = inference.load_variables(source_workdir, which)
  batch_size = config.train.eval_batch_size

  def metrics_of(logits, scored):
    return evaluate.compute_metrics(logits, scored['label'], scored['device'],
                                    dataset.class_names, dataset.device_names,
                                    evaluate.parse_device_groups(dataset.device_groups))

  source_scored = score_model(network, source_variables, dataset, 'test', batch_size, mesh)
  source = dict(metrics=_accuracy_summary(metrics_of(source_scored['logits'], source_scored)),
                size=_size_summary(complexity.measure(source_variables, config.model,
                                                      dataset.input_shape)))

  task_options = {}
  if config.distill.alpha > 0:
    task_options = distillation.distillation_parts(
        teacher_probabilities(config, dataset, workdir, source_workdir, teacher_workdirs,
                              teacher_logits_dir, mesh), config.distill)
  quantized = config.quant.enabled
  int8_activations = quantized and config.quant.activations == 'int8'
  scales = (quantization.calibrate_activation_scales(
      network, source_variables, calibration_batches(dataset, config))
      if int8_activations else None)
  train_model = (quantization.QuantizedModel(network, scales)
                 if quantized and config.quant.qat else network)
  steps_per_epoch, _ = builder.training_length(config.train, dataset.num_examples['train'])
  run = builder.build(config, dataset, devices, model=train_model,
                      extra_transform=pruning.pruning_from_config(config.prune, steps_per_epoch),
                      device_augmentation=translation, **task_options)
  writer = metric_writer.MetricWriter(workdir, enabled=jax.process_index() == 0)
  sparsity = ([SparsityReport(writer, max(1, int(config.train.eval_every_epochs * steps_per_epoch)))]
              if config.prune.target_sparsity > 0 else [])
  try:
    result = train.fit(config, workdir, dataset, run,
                       initial_state=lambda: run.warm_state(source_variables),
                       extra_hooks=sparsity, writer=writer)
  finally:
    writer.close()
  if not result.completed:
    return None
  state = result.state
  variables = jax.device_get({'params': state.params, 'batch_stats': state.batch_stats})
  if int8_activations and not config.quant.qat:
    scales = quantization.calibrate_activation_scales(network, variables,
                                                      calibration_batches(dataset, config))
  final_model = quantization.QuantizedModel(network, scales) if quantized else network
  student_scored = score_model(final_model, variables, dataset, 'test', batch_size, mesh)
  student = dict(metrics=_accuracy_summary(metrics_of(student_scored['logits'], student_scored)))
  report = dict(source_workdir=os.path.abspath(source_workdir), source_seed=source_seed,
                source=source, student=student,
                config=dict(prune=config.prune.to_dict(), distill=config.distill.to_dict(),
                            quant=config.quant.to_dict()))
  if quantized:
    export_dir = export.write_export(
        os.path.join(workdir, export.EXPORT_DIR), variables, config=config,
        activation_scales=scales, class_names=dataset.class_names,
        device_names=dataset.device_names, feature_params=dataset.feature_params)
    runtime = int8_runtime.Int8Model.load(export_dir)
    export_logits = runtime_logits(runtime, dataset, batch_size)
    report['export'] = dict(
        metrics=_accuracy_summary(metrics_of(export_logits, student_scored)),
        size=_size_summary(complexity.measure(runtime.variables, config.model,
                                              dataset.input_shape)),
        directory=os.path.abspath(export_dir))
    report.update(export_agreement(export_logits, student_scored['logits']))
  if jax.process_index() == 0:
    if scales is not None:
      fileio.atomic_write_json(os.path.join(workdir, ACTIVATION_SCALES_FILE), scales)
    fileio.atomic_write_json(os.path.join(workdir, REPORT_JSON), report)
    if quantized:
      fileio.atomic_write_text(os.path.join(workdir, REPORT_MARKDOWN), format_markdown(report))
  return report


def export_agreement(export_logits: np.ndarray, student_logits: np.ndarray) -> dict:
  """How closely the export reproduces the quantized student, clip by clip.

  Both compute the same integer arithmetic, but float32 reductions (ResNorm statistics, means)
  and exp run in another order in XLA and NumPy; one ulp at a rounding boundary changes an int8
  activation, so a prediction can differ where the student's top two logits nearly tie.
  """
  disagree = export_logits.argmax(-1) != student_logits.argmax(-1)
  top_two = np.sort(student_logits, axis=-1)[:, -2:]
  margins = top_two[:, 1] - top_two[:, 0]
  return dict(prediction_agreement=float(np.mean(~disagree)),
              disagreements=int(disagree.sum()),
              max_disagreement_margin=float(margins[disagree].max()) if disagree.any() else 0.0,
              max_logit_difference=float(np.max(np.abs(export_logits - student_logits))))


def runtime_logits(runtime: int8_runtime.Int8Model, dataset, batch_size: int) -> np.ndarray:
  """The NumPy integer runtime's logits for every test record, in record order."""
  source = dataset.sources['test']
  parts = []
  batches = input_pipeline.eval_batches(source, batch_size=batch_size,
                                       device_names=dataset.device_names)
  for batch in console.progress(batches, desc='int8 runtime', unit='batch', leave=False):
    parts.append(runtime.logits(batch['logmel'][batch['mask']]))
  return np.concatenate(parts)
