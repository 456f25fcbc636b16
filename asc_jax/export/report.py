"""Agreement of each exported artifact with asc_jax's own runtimes, and the export report
(export_report.json and export_report.md).

Two references: the int8 NumPy runtime (asc_jax/compress/int8_runtime.py: int8 convolution
inputs, float32 between convolutions, as quantization-aware training computes) for every
artifact, and for a fully integer .tflite also the TFLM-exact runtime
(asc_jax/export/tflite_integer.py: the file's own integer arithmetic, as TFLite Micro computes it).
"""

import numpy as np

INT8_RUNTIME = 'int8 runtime'
EXACT_RUNTIME = 'TFLM-exact runtime'


def agreement(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
  """Top-1 agreement and logit differences of `logits` against `reference` (both [N, K]), with the
  reference's top-2 margin on the clips where they disagree (small margins = near-ties)."""
  disagree = logits.argmax(-1) != reference.argmax(-1)
  top_two = np.sort(reference, axis=-1)[:, -2:]
  margins = top_two[:, 1] - top_two[:, 0]
  difference = np.abs(logits - reference)
  return dict(clips=int(len(logits)), top1_agreement=float(np.mean(~disagree)),
              disagreements=int(disagree.sum()),
              max_disagreement_margin=float(margins[disagree].max()) if disagree.any() else 0.0,
              max_abs_logit_difference=float(difference.max()),
              mean_abs_logit_difference=float(difference.mean()),
              logit_range=float(reference.max() - reference.min()),
              accuracy=float(np.mean(logits.argmax(-1) == labels)))


def runtimes_agreement(first: np.ndarray, second: np.ndarray) -> dict:
  """How far two runtimes running the same .tflite agree with each other (raw outputs [N, K]).

  In a fully integer model every int8 rounding at a convolution input turns a difference far
  below one step into a whole step on the few values that sit near a rounding boundary, and the
  next layers spread it: the interpreters' own int16 roundings already make their outputs
  differ, so their agreement with each other bounds what any one reference can reach."""
  return dict(top1_agreement=float(np.mean(first.argmax(-1) == second.argmax(-1))),
              identical_outputs=float(np.mean(np.all(first == second, axis=-1))))


def markdown(report: dict) -> str:
  """The human-readable report: sizes, arena, agreement per artifact and runtime."""
  size = report['model_size']
  lines = ['# Export report', '',
           f'Source: `{report["export_dir"]}`; agreement measured on the `{report["split"]}` split '
           f'of the training dataset ({report["clips"]} clips) against asc_jax\'s int8 NumPy '
           'runtime (asc_jax/compress/int8_runtime.py: int8 convolution inputs, float32 between '
           'convolutions, as quantization-aware training computes) and, for a fully integer '
           '.tflite, against the TFLM-exact runtime (asc_jax/export/tflite_integer.py: the '
           'file\'s integer arithmetic as TFLite Micro computes it).', '',
           '## Model', '', '| | |', '|---|---|',
           f'| parameters | {size["params"]:,} ({size["nonzero_params"]:,} non-zero) |',
           f'| DCASE2021 size (non-zero, stored width) | {size["bytes_dcase2021"]:,} B = '
           f'{size["kb_dcase2021"]:.2f} KB (1000) = {size["kib_dcase2021"]:.2f} KB (1024) |',
           f'| DCASE2022 size (all parameters, int8) | {size["bytes_dcase2022"]:,} B = '
           f'{size["kib_dcase2022"]:.2f} KB (1024) |',
           f'| MACs per clip | {size["macs"]:,} |']
  if 'tflite' in report:
    tfl = report['tflite']
    lines.append(f'| TFLite Micro tensor arena | {tfl["arena_bytes"]:,} B '
                 '(tflite-micro interpreter, 64-bit host) |')
  lines += ['', '## Artifacts', '', '| file | bytes | format |', '|---|---|---|']
  for artifact in report['artifacts']:
    lines.append(f'| {artifact["file"]} | {artifact["bytes"]:,} | {artifact["format"]} |')
  lines += ['', '## Agreement with asc_jax\'s runtimes', '',
            '| artifact | runtime | against | top-1 agreement | disagreements (max ref. margin) | '
            'max abs logit diff | mean abs logit diff | accuracy |',
            '|---|---|---|---|---|---|---|---|']
  reference_accuracy = report['reference']['accuracy']
  for row in report['agreement']:
    lines.append(f'| {row["artifact"]} | {row["runtime"]} | {row.get("reference", INT8_RUNTIME)} '
                 f'| {100 * row["top1_agreement"]:.2f} % | '
                 f'{row["disagreements"]} ({row["max_disagreement_margin"]:.3f}) | '
                 f'{row["max_abs_logit_difference"]:.4f} | {row["mean_abs_logit_difference"]:.4f} '
                 f'| {100 * row["accuracy"]:.2f} % |')
  lines += ['', f'int8 NumPy runtime accuracy: {100 * reference_accuracy:.2f} %; logits span '
            f'{report["reference"]["logit_range"]:.3f}.']
  exact = report.get('exact_runtime')
  if exact:
    lines += ['', f'{EXACT_RUNTIME} (asc_jax/export/tflite_integer.py, the .tflite file\'s integer '
              f'arithmetic as TFLite Micro computes it): accuracy {100 * exact["accuracy"]:.2f} %, '
              f'top-1 agreement with the int8 runtime {100 * exact["int8_runtime_top1_agreement"]:.2f}'
              f' %; outputs identical to tflite-micro\'s on '
              f'{100 * exact["tflite_micro"]["identical_outputs"]:.2f} % of the clips, to '
              f'ai-edge-litert\'s on {100 * exact["litert"]["identical_outputs"]:.2f} %.']
  if 'tflite' in report:
    tfl = report['tflite']
    lines += ['', f'## TFLite model (activations: {tfl["activations"]})', '',
              f'Input int8 {tfl["input_shape"]}: the log-mel after the input ResNorm, '
              f'q = clip(round(x / {tfl["input_scale"]:.8g}), -128, 127) (the stem\'s QAT scale, '
              f'zero point {tfl["input_zero_point"]}). ' + (
                  'Output float32 logits; float32 kernels between the int8 convolution inputs '
                  '(not fully integer).' if tfl['output_dtype'] == 'float32' else
                  f'Output {tfl["output_dtype"]} logits: '
                  f'(q - {tfl["output_zero_point"]}) * {tfl["output_scale"]:.8g}.'),
              f'Tensor scales (per tensor): {tfl["scales"]["qat"]} from quantization-aware '
              'training '
              f'(convolution inputs, unchanged), {tfl["scales"]["fixed"]} fixed by TFLite '
              f'(LOGISTIC), {tfl["scales"]["calibrated"]} calibrated on '
              f'{report["calibration_clips"]} training clips (tensors the NumPy runtime keeps in '
              'float32).',
              'Ops: ' + ', '.join(f'{name} x{count}' for name, count in
                                  sorted(tfl['op_counts'].items())) + '.',
              f'tflite-micro and ai-edge-litert on this file: top-1 agreement '
              f'{100 * tfl["runtimes_agreement"]["top1_agreement"]:.2f} % with each other, '
              f'identical outputs on {100 * tfl["runtimes_agreement"]["identical_outputs"]:.2f} % '
              'of the clips.']
    if tfl['clipped_weights']:
      lines.append(f'{tfl["clipped_weights"]} kernel entries of -128 in channels with a negative '
                   'folded normalization could not be negated exactly and are stored as 127.')
  return '\n'.join(lines) + '\n'
