"""Writes a trained (quantized) model in its stored integer form, and finds exports in workdirs.

The format is described in asc_jax/compress/int8_runtime.py, which reads it without any training
code: int8 kernels; every BatchNorm / SubSpectralNorm in its inference form x * multiplier + offset
(float16), with the scale of the kernel before it folded into the multiplier; float16 scales for
the other kernels; float32 biases and per-tensor activation scales; in one npz (no pickled
objects), and a JSON manifest with everything else needed to run it, including the log-mel front
end in full (`front_end`) with its mel filterbank as float32 in mel_filterbank.npy, so that an
embedded implementation can reproduce the features (asc_jax/export/front_end.py does, in NumPy).
"""

import io
import os
from typing import Any, Mapping, Optional

import ml_collections
import numpy as np

from asc_jax import features
from asc_jax import fileio
from asc_jax import inference
from asc_jax.compress import int8_runtime
from asc_jax.compress import quantization

EXPORT_DIR = 'export'
FILTERBANK_FILE = 'mel_filterbank.npy'


def flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, np.ndarray]:
  """{'params': {'a': {'kernel': x}}} -> {'params/a/kernel': x} (numpy arrays)."""
  flat = {}
  for name, value in tree.items():
    key = f'{prefix}{name}'
    if isinstance(value, Mapping):
      flat.update(flatten(value, key + '/'))
    else:
      flat[key] = np.asarray(value)
  return flat


def _norm_layers(flat_params: Mapping[str, np.ndarray]) -> list[str]:
  return sorted(name[:-len('/scale')] for name in flat_params if name.endswith('/scale'))


def stored_arrays(variables: Mapping[str, Any],
                  activation_scales: Optional[quantization.ActivationScales]
                  ) -> dict[str, np.ndarray]:
  """The flat arrays of an export (names as in int8_runtime's docstring) from float variables."""
  params = flatten(variables['params'])
  stats = variables.get('batch_stats', {})
  arrays, folded = {}, set()
  for norm in _norm_layers(params):
    path = tuple(norm.split('/'))
    kernel_path = quantization.folded_kernel_path(path)
    kernel = quantization.lookup(variables['params'], kernel_path) if kernel_path else None
    if kernel is not None:
      folded.add('/'.join(kernel_path))
    multiplier, offset = quantization.stored_norm(quantization.lookup(variables['params'], path),
                                                  quantization.lookup(stats, path), kernel)
    arrays[f'params/{norm}/multiplier'] = np.asarray(multiplier)
    arrays[f'params/{norm}/offset'] = np.asarray(offset)
  for name, value in params.items():
    layer, leaf = name.rsplit('/', 1)
    if leaf == 'kernel':
      values, scale = quantization.quantize_kernel(value)
      arrays[f'params/{name}'] = np.asarray(values)
      if name not in folded:
        arrays[f'params/{layer}/kernel_scale'] = np.asarray(scale)
    elif leaf == 'bias' and f'{layer}/scale' not in params:
      arrays[f'params/{name}'] = np.asarray(value, np.float32)
  for path, scale in (activation_scales or {}).items():
    arrays[f'quant/{path}/input_scale'] = np.float32(scale)
  return dict(sorted(arrays.items()))


def front_end_description(feature_params: dict) -> dict:
  """Every step of asc_jax.features.logmel with its parameters, for the manifest."""
  params = features.feature_params(feature_params)
  n_fft, win_length = params['n_fft'], params['win_length']
  return dict(
      audio=dict(sample_rate=params['sample_rate'], channels='mean of all channels (mono)',
                 resample=f'librosa.resample res_type={features.RESAMPLE_TYPE!r}',
                 clip_seconds=params['duration_s'], clip_samples=features.num_samples(params),
                 shorter='zero-padded at the end', longer='cropped (asc_jax.predict windows it)'),
      stft=dict(n_fft=n_fft, win_length=win_length, hop_length=params['hop_length'],
                window=f'{params["window"]} (periodic, scipy.signal.get_window fftbins=True), '
                       f'zero-padded to n_fft centred (left pad {(n_fft - win_length) // 2})',
                center=params['center'],
                center_padding=f'{n_fft // 2} zeros on both sides' if params['center'] else 'none',
                frames=features.num_frames(params), power='|STFT|^2'),
      mel=dict(n_mels=params['n_mels'], fmin=params['fmin'], fmax=params['fmax'],
               scale='slaney', norm='slaney', file=FILTERBANK_FILE, dtype='float32',
               shape=[params['n_mels'], 1 + n_fft // 2], applied='filterbank @ power'),
      log=dict(formula='log(mel + log_offset)', log_offset=params['log_offset'], base='e'),
      output=dict(layout='[n_mels, frames] float32 (frequency-major)'),
      feature_params=params)


def write_front_end(directory: str, feature_params: dict) -> dict:
  """Writes mel_filterbank.npy (float32) into `directory`; returns the front_end description."""
  params = features.feature_params(feature_params)
  filterbank = features.mel_filterbank(params['sample_rate'], params['n_fft'], params['n_mels'],
                                       params['fmin'], params['fmax'])
  buffer = io.BytesIO()
  np.save(buffer, np.asarray(filterbank, np.float32), allow_pickle=False)
  fileio.atomic_write_bytes(os.path.join(directory, FILTERBANK_FILE), buffer.getvalue())
  return front_end_description(params)


def write_export(directory: str, variables: Mapping[str, Any], *, config: ml_collections.ConfigDict,
                 activation_scales: Optional[quantization.ActivationScales], class_names,
                 device_names, feature_params: dict) -> str:
  """Quantizes `variables` (float params + batch_stats) and writes weights.npz + manifest.json.

  Returns the directory. The manifest is written last, so a directory with a manifest is complete.
  """
  arrays = stored_arrays(variables, activation_scales)
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  fileio.atomic_write_bytes(os.path.join(directory, int8_runtime.WEIGHTS_FILE), buffer.getvalue())
  front_end = (write_front_end(directory, feature_params)
               if set(features.FEATURE_KEYS) <= set(feature_params) else None)
  manifest = dict(
      format=int8_runtime.FORMAT, format_version=int8_runtime.FORMAT_VERSION,
      model=config.model.to_dict(), class_names=list(class_names), device_names=list(device_names),
      feature_params=feature_params, front_end=front_end, quantization=quantization.scheme_description(config.quant),
      arrays={name: dict(dtype=str(value.dtype), shape=list(value.shape))
              for name, value in sorted(arrays.items())})
  fileio.atomic_write_json(os.path.join(directory, int8_runtime.MANIFEST_FILE), manifest)
  return directory


def load_inference_bundle(path: str) -> inference.InferenceBundle:
  """The export at `path` (an export directory or a workdir holding one) for asc_jax.predict:
  `bundle.model` is the NumPy integer runtime (int8_runtime.Int8Model), not a Flax module."""
  directory = find_export(path)
  if directory is None:
    raise FileNotFoundError(f'no int8 export in {path} (looked for {int8_runtime.MANIFEST_FILE} '
                            f'there and in {os.path.join(path, EXPORT_DIR)}): run '
                            'python -m asc_jax.compress first.')
  runtime = int8_runtime.Int8Model.load(directory)
  manifest = runtime.manifest
  config = ml_collections.ConfigDict(dict(model=manifest['model'],
                                          features=manifest['feature_params']))
  return inference.InferenceBundle(
      config=config, model=runtime, variables=runtime.variables,
      class_names=tuple(manifest['class_names']), device_names=tuple(manifest['device_names']),
      feature_params=manifest['feature_params'])


def find_export(path: str) -> Optional[str]:
  """`path` if it is an export directory, `path`/export if that is one, else None."""
  for candidate in (path, os.path.join(path, EXPORT_DIR)):
    if os.path.exists(os.path.join(candidate, int8_runtime.MANIFEST_FILE)):
      return candidate
  return None
