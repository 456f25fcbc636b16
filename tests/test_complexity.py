"""Complexity report: parameter counts, DCASE byte rules, MACs by hand, receptive field, the CLI."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from asc_jax import complexity
from asc_jax import defaults
from asc_jax import models

from conftest import load_config_file

REPO = os.path.join(os.path.dirname(__file__), '..')
MOD1_PARAMS = 8_035
# Mod-1 BatchNorm features (c = 10, 15, 20, 25): transition blocks pre_bn C + ssn 4C + time_bn C,
# normal blocks 5C: 60 + 50 + 90 + 75 + 120 + 100 + 150 + 2 * 125 = 895; mean and var each.
MOD1_RUNNING_STATS = 2 * 895


def _mod1_config():
  return load_config_file(os.path.join(REPO, 'configs', 'bcresnet.py'), 'mod1')


def test_input_shape_follows_the_features_config():
  features = defaults.reference_features()
  assert complexity.input_shape(features) == (256, 431)
  features.center = False
  assert complexity.input_shape(features) == (256, 1 + (441_000 - 2048) // 1024)


def test_mod1_report_counts_and_hand_computed_macs():
  report = complexity.dense_report(_mod1_config())
  assert report['params'] == report['nonzero_params'] == MOD1_PARAMS
  assert report['bytes_dcase2022'] == MOD1_PARAMS
  assert report['bytes_dcase2021'] == 4 * (MOD1_PARAMS + MOD1_RUNNING_STATS)
  assert report['kb_dcase2021'] == report['bytes_dcase2021'] / 1000
  assert report['kib_dcase2021'] == report['bytes_dcase2021'] / 1024
  layers = {row['layer']: row for row in report['layers']}
  # Stem: 5x5, 1 -> 20 channels, stride 2: 256 x 431 -> 128 x 216.
  assert layers['stem']['macs'] == 5 * 5 * 1 * 20 * 128 * 216
  assert layers['stem']['params'] == 5 * 5 * 20 + 20
  # Depthwise 3x1 on 10 channels (groups = 10) at 128 x 216.
  assert layers['stage1_block0/freq_conv']['macs'] == 3 * 1 * 1 * 10 * 128 * 216
  # 1x1 20 -> 10 at 128 x 216; head 1x1 25 -> 10 at 32 x 54.
  assert layers['stage1_block0/pre_conv']['macs'] == 20 * 10 * 128 * 216
  assert layers['head']['macs'] == 25 * 10 * 32 * 54
  assert report['macs'] == sum(row['macs'] for row in report['layers'])
  assert report['receptive_field']['mel_bins'] == report['receptive_field']['frames'] == 115


def test_stored_zeros_and_dtypes_change_the_dcase2021_bytes_only():
  config = _mod1_config()
  shape = complexity.input_shape(config.features)
  dense = complexity.abstract_variables(models.build_model(config.model), shape)
  variables = jax.tree.map(lambda leaf: jnp.ones(leaf.shape, leaf.dtype), dense)
  kernel = np.ones((1, 1, 20, 10), np.int8)
  kernel[..., :5] = 0
  variables['params']['stage1_block0']['pre_conv']['kernel'] = kernel
  variables['params']['head']['kernel'] = jnp.ones((1, 1, 25, 10), jnp.float16)
  report = complexity.measure(variables, config.model, shape)
  assert report['params'] == MOD1_PARAMS and report['nonzero_params'] == MOD1_PARAMS - 100
  assert report['bytes_dcase2022'] == MOD1_PARAMS
  full = 4 * (MOD1_PARAMS + MOD1_RUNNING_STATS)
  assert report['bytes_dcase2021'] == full - 200 * 4 + 100 * 1 - 250 * 2
  assert report['nonzero_measured']


def test_cli_prints_the_json_report():
  result = subprocess.run(
      [sys.executable, '-m', 'asc_jax.complexity', '--config=configs/bcresnet.py:mod1', '--json'],
      cwd=REPO, capture_output=True, text=True, check=True, timeout=300)
  report = json.loads(result.stdout)
  assert (report['params'], report['nonzero_params'], report['bytes_dcase2022']) == (
      MOD1_PARAMS, MOD1_PARAMS, MOD1_PARAMS)
  assert report['bytes_dcase2021'] == 4 * (MOD1_PARAMS + MOD1_RUNNING_STATS)
  assert report['macs'] == complexity.dense_report(_mod1_config())['macs']
