"""Reference integer inference over an exported model in NumPy alone (no JAX, Flax, training code).

An export directory (written by asc_jax.compress.export) holds:
  manifest.json  format, architecture config, class and device names, feature parameters,
                 quantization scheme, and the name, dtype and shape of every stored array;
  weights.npz    'params/<layer>/kernel' int8 (k_h, k_w, C_in / groups, C_out);
                 'params/<norm>/multiplier' and 'params/<norm>/offset' float16: a BatchNorm
                 ([C]) or SubSpectralNorm ([sub-bands, C]) in inference form x * multiplier +
                 offset, where the multiplier already holds the per-channel scale of the kernel
                 right before the norm; 'params/<layer>/kernel_scale' float16 [C_out] for the other
                 kernels, and their 'params/<layer>/bias' float32; with int8 activations,
                 'quant/<layer>/input_scale' float32 scalars.
A convolution quantizes its input as clip(round(x * float32(1 / input_scale)), -128, 127),
multiplies it by the int8 weights with exact integer accumulation, then rescales (input scale,
then kernel scale or the folded norm); the rest runs in float32. Supported
network: BC-ResNet-Mod (manifest model.name 'bcresnet_mod').

  model = Int8Model.load('workdir/export'); logits = model.logits(logmel)   # logmel [N, F, T]
"""

import dataclasses
import json
import os
from typing import Any

import numpy as np

FORMAT = 'asc_jax-int8-export'
FORMAT_VERSION = 1
MANIFEST_FILE = 'manifest.json'
WEIGHTS_FILE = 'weights.npz'
INT8_MIN, INT8_MAX = -128, 127


def read_manifest(directory: str) -> dict:
  path = os.path.join(directory, MANIFEST_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} is missing: {directory} is not an int8 export '
                            '(python -m asc_jax.compress writes one under <workdir>/export).')
  with open(path, encoding='utf-8') as file:
    manifest = json.load(file)
  if manifest.get('format') != FORMAT or manifest.get('format_version') != FORMAT_VERSION:
    raise ValueError(f'{path}: format {manifest.get("format")!r} version '
                     f'{manifest.get("format_version")!r}; this reader needs {FORMAT!r} version '
                     f'{FORMAT_VERSION}. Export the model again with this version of asc_jax.')
  return manifest


def read_arrays(directory: str, manifest: dict) -> dict[str, np.ndarray]:
  """The stored arrays by flat name, checked against the manifest's names, dtypes and shapes."""
  path = os.path.join(directory, WEIGHTS_FILE)
  with np.load(path, allow_pickle=False) as stored:
    arrays = {name: stored[name] for name in stored.files}
  for name, spec in manifest['arrays'].items():
    if name not in arrays:
      raise ValueError(f'{path} lacks array {name!r} listed in {MANIFEST_FILE}: export again.')
    if str(arrays[name].dtype) != spec['dtype'] or list(arrays[name].shape) != spec['shape']:
      raise ValueError(f'{path}: array {name!r} is {arrays[name].dtype}{list(arrays[name].shape)}, '
                       f'the manifest says {spec["dtype"]}{spec["shape"]}: export again.')
  return arrays


def nest(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
  """{'params/a/kernel': x} -> {'params': {'a': {'kernel': x}}}."""
  tree: dict[str, Any] = {}
  for name, value in arrays.items():
    *parents, leaf = name.split('/')
    node = tree
    for parent in parents:
      node = node.setdefault(parent, {})
    node[leaf] = value
  return tree


def _standardize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
  """(x - mean) / sqrt(var + eps) in the training code's order: mean, then mean square deviation."""
  mean = x.mean(axis=axes, keepdims=True)
  var = np.square(x - mean).mean(axis=axes, keepdims=True)
  return (x - mean) * (np.float32(1) / np.sqrt(var + np.float32(eps)))


def _shifted_conv(x: np.ndarray, kernel: np.ndarray, padding, strides) -> np.ndarray:
  """Convolution (groups 1 or depthwise) as a sum over taps of strided slices; float64 math."""
  x = np.pad(x, ((0, 0), *padding, (0, 0)))
  k_h, k_w, c_in_per_group, _ = kernel.shape
  out_h = (x.shape[1] - k_h) // strides[0] + 1
  out_w = (x.shape[2] - k_w) // strides[1] + 1
  depthwise = c_in_per_group == 1 and x.shape[3] > 1
  total = 0.0
  for i in range(k_h):
    for j in range(k_w):
      window = x[:, i:i + (out_h - 1) * strides[0] + 1:strides[0],
                 j:j + (out_w - 1) * strides[1] + 1:strides[1], :]
      total = total + (window * kernel[i, j, 0] if depthwise else window @ kernel[i, j])
  return total


@dataclasses.dataclass
class Int8Model:
  """An exported model: `logits(logmel)` runs it; `variables` is the stored pytree (for sizes)."""
  manifest: dict
  arrays: dict[str, np.ndarray]

  @classmethod
  def load(cls, directory: str) -> 'Int8Model':
    manifest = read_manifest(directory)
    if manifest['model']['name'] != 'bcresnet_mod':
      raise ValueError(f'{os.path.join(directory, MANIFEST_FILE)}: model '
                       f'{manifest["model"]["name"]!r} has no integer reference implementation; '
                       'only bcresnet_mod does.')
    return cls(manifest, read_arrays(directory, manifest))

  @property
  def variables(self) -> dict[str, Any]:
    return nest(self.arrays)

  @property
  def class_names(self) -> tuple[str, ...]:
    return tuple(self.manifest['class_names'])

  def _get(self, name: str) -> np.ndarray:
    return self.arrays[name]

  def accumulate(self, x: np.ndarray, layer: str, padding=((0, 0), (0, 0)), strides=(1, 1)
                 ) -> np.ndarray:
    """Convolution of x with the int8 kernel, times the input scale; no kernel scale applied."""
    kernel = self._get(f'params/{layer}/kernel').astype(np.float64)
    input_scale_name = f'quant/{layer}/input_scale'
    if input_scale_name not in self.arrays:
      return _shifted_conv(x.astype(np.float64), kernel, padding, strides).astype(np.float32)
    input_scale = self._get(input_scale_name)
    q = np.clip(np.round(x * (np.float32(1) / input_scale)), INT8_MIN, INT8_MAX)
    return _shifted_conv(q, kernel, padding, strides).astype(np.float32) * input_scale

  def conv(self, x: np.ndarray, layer: str, padding=((0, 0), (0, 0)), strides=(1, 1)
           ) -> np.ndarray:
    """A convolution not followed by a norm: kernel scale per output channel, optional bias."""
    y = self.accumulate(x, layer, padding, strides)
    y = y * self._get(f'params/{layer}/kernel_scale').astype(np.float32)
    bias_name = f'params/{layer}/bias'
    return y + self._get(bias_name) if bias_name in self.arrays else y

  def conv_norm(self, x: np.ndarray, conv: str, norm: str, padding=((0, 0), (0, 0))
                ) -> np.ndarray:
    """A convolution and the BatchNorm (multiplier [C]) or SubSpectralNorm ([S, C]) after it."""
    y = self.accumulate(x, conv, padding)
    multiplier = self._get(f'params/{norm}/multiplier').astype(np.float32)
    offset = self._get(f'params/{norm}/offset').astype(np.float32)
    if multiplier.ndim == 1:
      return y * multiplier + offset
    n, f, t, c = y.shape
    bands = multiplier.shape[0]
    split = y.reshape(n, bands, f // bands, t, c)
    return (split * multiplier[None, :, None, None, :]
            + offset[None, :, None, None, :]).reshape(n, f, t, c)

  def freq_norm(self, x: np.ndarray) -> np.ndarray:
    model = self.manifest['model']
    lam, eps = np.float32(model['norm_lambda']), model['norm_eps']
    if model['norm'] == 'resnorm':
      return lam * x + _standardize(x, (2, 3), eps)
    if model['norm'] == 'rfn':
      return lam * _standardize(x, (1, 2, 3), eps) + (1 - lam) * _standardize(x, (2, 3), eps)
    return x

  def block(self, x: np.ndarray, name: str) -> np.ndarray:
    features = self._get(f'params/{name}/freq_conv/kernel').shape[-1]
    shortcut = x
    transition = x.shape[-1] != features
    if transition:
      x = np.maximum(self.conv_norm(x, f'{name}/pre_conv', f'{name}/pre_bn'), 0)
    aux = self.conv_norm(x, f'{name}/freq_conv', f'{name}/ssn/bn', ((1, 1), (0, 0)))
    y = aux.mean(axis=1, keepdims=True)
    y = self.conv_norm(y, f'{name}/time_conv', f'{name}/time_bn', ((0, 0), (1, 1)))
    y = self.conv(y * (1 / (1 + np.exp(-y))), f'{name}/point_conv')
    out = aux + y
    return np.maximum(out if transition else out + shortcut, 0)

  def logits(self, logmel: np.ndarray) -> np.ndarray:
    """float32 logits [N, classes] of log-mels [N, F, T] (BC-ResNet-Mod, inference mode)."""
    x = np.asarray(logmel, np.float32)[..., None]
    x = self.freq_norm(x)
    x = self.conv(x, 'stem', ((2, 2), (2, 2)), strides=(2, 2))
    for stage, num_blocks in enumerate((2, 2, 2, 3), start=1):
      for index in range(num_blocks):
        x = self.block(x, f'stage{stage}_block{index}')
      x = self.freq_norm(x)
      if stage <= 2:
        n, f, t, c = x.shape
        x = x[:, :f - f % 2, :t - t % 2].reshape(n, f // 2, 2, t // 2, 2, c).max(axis=(2, 4))
    return self.conv(x, 'head').mean(axis=(1, 2)).astype(np.float32)
