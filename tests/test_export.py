"""The stored integer form: writing it, reading it without training code, running it with the NumPy
runtime to the same logits as the quantized model, and measuring it under the DCASE rules."""

import functools
import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from asc_jax import complexity
from asc_jax import defaults
from asc_jax import models
from asc_jax.compress import export
from asc_jax.compress import int8_runtime
from asc_jax.compress import quantization
from asc_jax.models import layers

INPUT_SHAPE = (32, 24)


def perturbed(variables, seed=0):
  """Variables whose BatchNorm statistics and biases are not at their initial values."""
  rng = np.random.RandomState(seed)
  return jax.tree.map(lambda leaf: np.asarray(leaf) + 0.2 * rng.rand(*np.shape(leaf)).astype(
      np.float32), jax.device_get(variables))


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  config = defaults.experiment(defaults.data_section('synthetic_scenes', 'tiny'),
                               defaults.reference_features(), defaults.bcresnet_mod_model(1),
                               defaults.sgd_cosine_train())
  config.quant.enabled = True
  model = models.build_model(config.model)
  x = np.asarray(jax.random.normal(jax.random.key(1), (6, *INPUT_SHAPE))) * 2.0 - 4.0
  variables = jax.jit(lambda x: model.init({'params': jax.random.key(0)}, x, train=False))(x[:1])
  variables = perturbed(variables)
  kernel = variables['params']['stage2_block0']['pre_conv']['kernel']
  kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.6)] = 0.0   # a pruned kernel
  scales = quantization.calibrate_activation_scales(model, variables, [x])
  directory = export.write_export(
      str(tmp_path_factory.mktemp('export') / 'export'), variables, config=config,
      activation_scales=scales, class_names=[f'class{i}' for i in range(10)],
      device_names=['a', 'b'], feature_params={'n_mels': 32})
  quantized = quantization.QuantizedModel(model, scales)
  logits = np.asarray(jax.jit(functools.partial(quantized.apply, train=False))(variables, x))
  return dict(config=config, variables=variables, x=x, directory=directory, logits=logits,
              scales=scales)


def test_runtime_gives_the_quantized_models_logits(exported):
  runtime = int8_runtime.Int8Model.load(exported['directory'])
  logits = runtime.logits(exported['x'])
  row_difference = np.abs(logits - exported['logits']).max(axis=-1)
  # Float32 sums in another order can move an activation across a rounding boundary (one int8
  # step somewhere in the network); every other clip matches to float precision.
  assert np.mean(row_difference < 1e-5) >= 0.8 and row_difference.max() < 0.05
  np.testing.assert_array_equal(logits.argmax(-1), exported['logits'].argmax(-1))
  assert runtime.class_names == tuple(f'class{i}' for i in range(10))


def test_stored_form_has_int8_kernels_float16_norms_and_no_float_statistics(exported):
  with np.load(os.path.join(exported['directory'], int8_runtime.WEIGHTS_FILE),
               allow_pickle=False) as stored:
    arrays = {name: stored[name] for name in stored.files}
  kernels = {name: value for name, value in arrays.items() if name.endswith('/kernel')}
  assert len(kernels) == 33 and all(value.dtype == np.int8 for value in kernels.values())
  assert arrays['params/stage1_block0/ssn/bn/multiplier'].shape == (4, 10)
  assert arrays['params/stage1_block0/time_bn/multiplier'].dtype == np.float16
  assert 'params/stage1_block0/time_conv/kernel_scale' not in arrays   # folded into time_bn
  assert arrays['params/stage1_block0/point_conv/kernel_scale'].dtype == np.float16
  assert arrays['params/stem/bias'].dtype == np.float32
  assert not any(name.startswith('batch_stats/') or name.endswith('/mean') for name in arrays)
  assert set(exported['scales']) == {name.split('/', 1)[1].rsplit('/', 1)[0]
                                     for name in arrays if name.startswith('quant/')}
  pruned = exported['variables']['params']['stage2_block0']['pre_conv']['kernel'] == 0
  assert np.all(arrays['params/stage2_block0/pre_conv/kernel'][pruned] == 0)


def test_manifest_describes_everything_and_is_checked(exported, tmp_path):
  with open(os.path.join(exported['directory'], int8_runtime.MANIFEST_FILE)) as file:
    manifest = json.load(file)
  assert manifest['model']['width'] == 1.0 and manifest['feature_params'] == {'n_mels': 32}
  assert manifest['quantization']['weights']['dtype'] == 'int8'
  assert manifest['quantization']['activations']['dtype'] == 'int8'
  assert manifest['arrays']['params/stem/kernel'] == {'dtype': 'int8', 'shape': [5, 5, 1, 20]}
  broken = tmp_path / 'broken'
  broken.mkdir()
  manifest['format_version'] = 99
  (broken / int8_runtime.MANIFEST_FILE).write_text(json.dumps(manifest))
  with pytest.raises(ValueError, match='version'):
    int8_runtime.Int8Model.load(str(broken))
  assert export.find_export(os.path.dirname(exported['directory'])) == exported['directory']
  assert export.find_export(str(tmp_path)) is None


def test_dcase_sizes_of_the_stored_form(exported):
  runtime = int8_runtime.Int8Model.load(exported['directory'])
  report = complexity.measure(runtime.variables, exported['config'].model, INPUT_SHAPE)
  expected = sum(np.count_nonzero(value) * value.dtype.itemsize
                 for value in runtime.arrays.values())
  assert report['bytes_dcase2021'] == expected
  dense = complexity.measure(exported['variables'], exported['config'].model, INPUT_SHAPE)
  assert report['bytes_dcase2021'] < dense['bytes_dcase2021'] / 3
  assert report['macs'] == dense['macs']


def test_every_convolution_computes_as_the_runtime_does_given_the_same_input(exported):
  """Layer by layer, from identical inputs: the training code's int8 inference path and the
  NumPy runtime agree to float32 rounding (the whole network may differ where an activation
  lands within an ulp of a rounding boundary; see compress.pipeline.export_agreement)."""
  runtime = int8_runtime.Int8Model.load(exported['directory'])
  model = models.build_model(exported['config'].model)
  quantized = quantization.QuantizedModel(model, exported['scales'])
  captured = {}

  def capture(next_fun, args, kwargs, context):
    output = next_fun(*args, **kwargs)
    if isinstance(context.module, layers.Conv) and context.method_name == '__call__':
      captured[context.module.name if context.module.name in ('stem', 'head') else
               '/'.join(context.module.path)] = (args[0], output)
    return output

  def run(variables, x):
    with nn.intercept_methods(capture):
      quantized.apply(variables, x, train=False)
    return dict(captured)

  layers_seen = jax.device_get(jax.jit(run)(exported['variables'], exported['x']))
  for name, padding, strides in (('stem', ((2, 2), (2, 2)), (2, 2)), ('head', ((0, 0), (0, 0)),
                                                                      (1, 1)),
                                 ('stage1_block0/point_conv', ((0, 0), (0, 0)), (1, 1))):
    inputs, outputs = layers_seen[name]
    np.testing.assert_allclose(runtime.conv(inputs, name, padding, strides), outputs,
                               rtol=1e-6, atol=1e-6)
  inputs, outputs = layers_seen['stage1_block0/freq_conv']
  accumulated = runtime.accumulate(inputs, 'stage1_block0/freq_conv', ((1, 1), (0, 0)))
  np.testing.assert_array_equal(accumulated, outputs)   # integer sums, times the input scale.
