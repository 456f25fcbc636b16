"""Default config sections shared by the files in configs/.

Every number a user may want to change lives in a config; the experiment files in configs/
compose these sections and override what differs. Values follow ../REFERENCE.md where the
paper is specific; where it is not, the choice is documented next to the key.
"""

import ml_collections
from ml_collections import config_dict


def reference_features() -> ml_collections.ConfigDict:
  """Log-mel front end of REFERENCE.md section 4: 256 mel bins x 431 frames per 10 s clip."""
  return ml_collections.ConfigDict(dict(
      sample_rate=44100,          # Hz; audio at any other rate is resampled to this.
      duration_s=10.0,            # clips are padded with zeros or cropped to this length.
      n_fft=2048,
      win_length=config_dict.placeholder(int),   # None: n_fft.
      hop_length=1024,
      window='hann',
      center=True,                # librosa centring: frames = 1 + samples // hop.
      n_mels=256,
      fmin=0.0,
      fmax=config_dict.placeholder(float),       # None: sample_rate / 2.
      log_offset=1e-6,            # log(mel + log_offset).
  ))


def data_section(name: str, builder_config: str = '') -> ml_collections.ConfigDict:
  """Which TFDS dataset to read and where; see asc_jax/data for the builders."""
  return ml_collections.ConfigDict(dict(
      name=name,                    # synthetic_scenes | tau_urban_acoustic_scenes_2020_mobile | audio_folder
      builder_config=builder_config,  # synthetic_scenes: tiny | small | tau_shaped; others: '' = from features.
      data_dir='',                  # where prepared datasets are written; '' = ~/tensorflow_datasets.
      manual_dir='',                # TAU: the unpacked development set; audio_folder: the audio root.
      csv='',                       # audio_folder: metadata CSV (relative to manual_dir or absolute).
      train_folds='',               # audio_folder: comma-separated folds for train ('' = use a split column).
      test_folds='',                # audio_folder: comma-separated folds for test.
      num_workers=0,                # feature-extraction processes; 0 = all cores.
  ))


def bcresnet_mod_model(width: float = 8) -> ml_collections.ConfigDict:
  """BC-ResNet-Mod-k with ResNorm (REFERENCE.md section 3); width k gives base channels 10k."""
  return ml_collections.ConfigDict(dict(
      name='bcresnet_mod',          # bcresnet_mod (ASC) | bcresnet (keyword-spotting topology).
      width=float(width),           # bcresnet_mod: k (base 10k); bcresnet: tau (base 8 tau).
      num_classes=10,
      norm='resnorm',               # resnorm | rfn | none.
      norm_lambda=0.1,              # lam of ResNorm / RFN.
      norm_eps=1e-5,
      sub_bands=4,                  # SubSpectralNorm sub-bands S.
      dropout_rate=0.1,             # channel-wise dropout in each block.
      dtype='float32',              # compute dtype: float32 | bfloat16.
  ))


def sgd_cosine_train() -> ml_collections.ConfigDict:
  """Official BC-ResNet recipe (REFERENCE.md section 7): SGD 0.9, wd 1e-3, lr 0.1, warm-up + cosine."""
  return ml_collections.ConfigDict(dict(
      batch_size=100,               # global batch, split over all devices.
      num_epochs=200,
      optimizer='sgd',              # sgd | adam | adamw.
      learning_rate=0.1,
      momentum=0.9,
      weight_decay=1e-3,
      warmup_epochs=5,
      grad_clip_norm=0.0,           # 0 = no clipping.
      label_smoothing=0.0,
      eval_batch_size=100,
      eval_every_epochs=10,
      log_every_steps=50,
      checkpoint_every_steps=500,
      compilation_cache_dir='~/.cache/asc_jax/jax_cache',   # '' disables the persistent cache.
  ))
