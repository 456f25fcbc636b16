"""Networks: BC-ResNet, BC-ResNet-Mod and their normalizations; `build_model` from a model config."""

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from asc_jax.models import bcresnet

NETWORKS = {'bcresnet_mod': bcresnet.BCResNetMod, 'bcresnet': bcresnet.BCResNet}
DTYPES = ('float32', 'bfloat16', 'float16')


def build_model(model_config: ml_collections.ConfigDict) -> nn.Module:
  """The network of config.model; apply as model.apply(variables, x [N, F, T], train=...)."""
  if model_config.name not in NETWORKS:
    raise ValueError(f'model config key name={model_config.name!r} is unknown; '
                     f'choose one of {", ".join(NETWORKS)}.')
  if model_config.dtype not in DTYPES:
    raise ValueError(f'model config key dtype={model_config.dtype!r} is unknown; '
                     f'choose one of {", ".join(DTYPES)}.')
  return NETWORKS[model_config.name](
      width=float(model_config.width), num_classes=int(model_config.num_classes),
      norm=model_config.norm, norm_lambda=float(model_config.norm_lambda),
      norm_eps=float(model_config.norm_eps), sub_bands=int(model_config.sub_bands),
      dropout_rate=float(model_config.dropout_rate), dtype=jnp.dtype(model_config.dtype),
      conv_impl=model_config.get('conv_impl', 'fast'),
      bias_init=model_config.get('bias_init', 'torch'),
      bn_momentum=float(model_config.get('bn_momentum', bcresnet.BN_MOMENTUM)),
      bn_epsilon=float(model_config.get('bn_epsilon', bcresnet.BN_EPSILON)))
