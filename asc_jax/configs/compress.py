"""Compression of a trained run: distillation + magnitude pruning + int8 QAT into a new workdir.

The student starts from the source run's weights and config; this file holds only what changes:
the fine-tuning schedule (merged into config.train), and the prune, distill and quant sections.
Variants by argument:

  mod8 (default)  BC-ResNet-Mod-8 to <= 61.0 KB under the DCASE2021 rule (KB = 1024 bytes):
                  94 % of the 1x1 kernel entries pruned (288,400 -> about 17,300; the 11,920
                  depthwise and stem entries stay whole, see compress/pruning.py); int8 kernels
                  (1 byte per non-zero entry) plus about 32 KB of float16 folded normalizations
                  and kernel scales: about 58.8 KB.
  mod2            BC-ResNet-Mod-2 (25,010 parameters, e.g. configs/real_audio.py): already far
                  under 61.0 KB at int8, so nothing is pruned; 10 epochs of int8 QAT at a low
                  learning rate, distilled from the source model (or --teacher_workdir).
  tiny            seconds on the tiny synthetic set (tests).

Full run on the synthetic scenes (about an hour per training on 2 CPU cores):
  python -m asc_jax.main --config=configs/quickstart.py --config.model.width=8 --workdir=/tmp/mod8
  python -m asc_jax.main --config=configs/teacher.py:small --workdir=/tmp/teacher
  python -m asc_jax.compress --config=configs/compress.py:mod8 --source_workdir=/tmp/mod8 \
      --teacher_workdir=/tmp/teacher --workdir=/tmp/mod8_compressed
Without --teacher_workdir the source model is its own teacher.
"""

import ml_collections

from asc_jax import defaults


def get_config(arg: str = 'mod8'):
  config = ml_collections.ConfigDict(dict(
      seed=0,
      data_dir='',                    # '' = the source run's config.data.data_dir.
      compilation_cache_dir='~/.cache/asc_jax/jax_cache',
      # Merged into the source run's config.train (only these keys change).
      # grad_clip_norm: a 3-epoch trial with the pruning ramp squeezed into 2 epochs diverged.
      train=ml_collections.ConfigDict(dict(num_epochs=30, learning_rate=0.02, warmup_epochs=0,
                                           eval_every_epochs=5, grad_clip_norm=5.0)),
      prune=defaults.prune_section(), distill=defaults.distill_section(),
      quant=defaults.quant_section()))
  config.prune.update(dict(target_sparsity=0.94, start_epoch=0.0, end_epoch=18.0,
                           update_every_steps=20, scope='layerwise'))
  config.distill.update(dict(alpha=0.5, temperature=2.0))
  config.quant.update(dict(enabled=True, activations='int8', qat=True, calibration_batches=8))
  if arg == 'mod2':
    config.train.update(dict(num_epochs=10, learning_rate=0.005, eval_every_epochs=2))
    config.prune.target_sparsity = 0.0
  elif arg == 'tiny':
    config.train.update(dict(num_epochs=3, learning_rate=0.02, eval_every_epochs=3))
    config.prune.update(dict(target_sparsity=0.5, end_epoch=2.0, update_every_steps=2))
    config.quant.calibration_batches = 2
    config.compilation_cache_dir = ''
  elif arg != 'mod8':
    raise ValueError(f'configs/compress.py: unknown variant {arg!r}; choose mod8, mod2 or tiny.')
  return config
