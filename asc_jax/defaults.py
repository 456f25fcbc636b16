"""Default config sections shared by the files in configs/.

Every number a user may want to change lives in a config; the experiment files in configs/
compose these sections and override what differs. Values follow docs/method.md where the
paper is specific; where it is not, the choice is documented next to the key.
"""

import ml_collections
from ml_collections import config_dict


def reference_features() -> ml_collections.ConfigDict:
  """Log-mel front end of docs/method.md section 4: 256 mel bins x 431 frames per 10 s clip."""
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


def synthetic_features(preset: str) -> ml_collections.ConfigDict:
  """Front ends the synthetic_scenes presets small and tiny are built with (others: reference)."""
  features = reference_features()
  if preset == 'small':
    features.update(dict(sample_rate=16000, duration_s=4.0, n_fft=1024, hop_length=512, n_mels=64))
  elif preset == 'tiny':
    features.update(dict(sample_rate=8000, duration_s=1.0, n_fft=256, hop_length=128, n_mels=32))
  return features


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
      validation_folds='',          # audio_folder: comma-separated folds for validation (with the above).
      # Validation is carved from the training data, never from test; evaluation during
      # training, early stopping and the best checkpoint read it, test is scored once at the end.
      # TAU: fraction of fold1_train's recording locations (identifiers) held out, stratified by
      # scene (the DCASE2021 baseline holds out about 30 % by location). audio_folder: fraction
      # of the training rows held out (whole `group`s, stratified by device) when the CSV and
      # validation_folds name no validation rows. synthetic_scenes: its generator's own
      # validation locations (this key is not read). 0 = no validation split.
      validation_fraction=0.3,
      validation_seed=0,            # seed of the hold-out (numpy Generator [seed, stratum]).
      # Out-of-fold teachers: 'k/K' trains on every recording group of the train split but fold
      # k of K (asc_jax/data/cross_fit.py); '' = the whole train split.
      cross_fit='',
      cross_fit_seed=0,             # seed that deals the groups into the K folds.
      num_workers=0,                # feature-extraction processes; 0 = all cores.
      # The train split is read once into memory when its log-mels take at most this many MiB
      # (asc_jax/data/memory.py); larger splits, or 0, are read from the prepared files each epoch.
      train_in_memory_mb=2048,
      # Devices reported together ('name=dev,dev;name=dev'); '' = DCASE's real a,b,c / seen
      # s1-s3 / unseen s4-s6.
      device_groups='',
  ))


def bcresnet_mod_model(width: float = 8) -> ml_collections.ConfigDict:
  """BC-ResNet-Mod-k with ResNorm (docs/method.md section 3); width k gives base channels 10k."""
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
      conv_impl='fast',             # fast (shifted slices / einsum) | lax (lax.conv): same params.
      # Initialisation and BatchNorm as in the PyTorch reference (PyTorch's defaults, kept by the
      # official BC-ResNet code): conv kernels U(+-1/sqrt(fan_in)) always; biases (stem and
      # head convolutions) U(+-1/sqrt(fan_in)) with 'torch', 0 with 'zeros' (Flax's habit).
      bias_init='torch',
      bn_momentum=0.9,              # Flax convention; PyTorch's momentum 0.1 is the same update.
      bn_epsilon=1e-5,
  ))


def sgd_cosine_train() -> ml_collections.ConfigDict:
  """Official BC-ResNet recipe (docs/method.md section 7): SGD 0.9, wd 1e-3, lr 0.1, warm-up + cosine."""
  return ml_collections.ConfigDict(dict(
      batch_size=100,               # global batch, split over all devices.
      num_epochs=200,
      optimizer='sgd',              # sgd | adam | adamw.
      learning_rate=0.1,
      momentum=0.9,
      weight_decay=1e-3,
      warmup_epochs=5.0,            # may be a fraction (one-cycle: 0.05 * num_epochs).
      grad_clip_norm=0.0,           # 0 = no clipping.
      label_smoothing=0.0,
      eval_batch_size=100,
      eval_every_epochs=10,         # validation scored this often (and at the end).
      early_stopping_patience=0,    # stop after this many validation scores without a new best; 0 = off.
      test_checkpoint='best',       # scored on test once at the end: best (by validation accuracy;
                                    # final when the dataset has no validation split) | final.
      log_every_steps=50,
      checkpoint_every_steps=500,
      stop_sync_every_steps=10,     # multi-process runs agree on a stop signal at multiples of this.
      compilation_cache_dir='~/.cache/asc_jax/jax_cache',   # '' disables the persistent cache.
  ))


def augment_section() -> ml_collections.ConfigDict:
  """On-device augmentation switches (asc_jax/augment); every one is off by default."""
  return ml_collections.ConfigDict(dict(
      mixup_alpha=0.0,              # Beta(alpha, alpha) weight per example; 0 = off.
      specaugment_freq_masks=0,     # frequency masks per example; BC-ResNet recipe: 2. 0 = off.
      specaugment_freq_mask_width=0,  # widest frequency mask in mel bins (width ~ U{0..this}).
      specaugment_time_masks=0,     # time masks per example; BC-ResNet recipe: 2. 0 = off.
      specaugment_time_mask_width=0,  # widest time mask in frames (width ~ U{0..this}).
      specaugment_mask_value='mean',  # mean (the example's mean log-mel) | zero (0 is not silence).
      time_roll_max_shift=0,        # circular time shift in frames, U{-this..this}; 0 = off.
      freq_mixstyle_p=0.0,          # probability per batch; CP-JKU 2023: 0.4. 0 = off.
      freq_mixstyle_alpha=0.3,      # Beta(alpha, alpha) mixing weight; CP-JKU 2023: 0.3.
      freq_mixstyle_eps=1e-6,       # added to the per-frequency variance.
      filter_augment_p=0.0,         # FilterAugment: probability per example; 0 = off.
      filter_augment_db_range=6.0,  # gains ~ U[-this, this] dB (Nam et al. 2022: 6).
      filter_augment_min_bands=3,   # bands per example ~ U{min..max} (Nam et al. 2022: 3..6).
      filter_augment_max_bands=6,
      filter_augment_type='linear',  # linear (gains interpolated between knots) | step.
      translation_p=0.0,            # probability per source-device example of being replaced by its
                                    # translation to a random seen device; 0 = off.
      translation_workdir='',       # workdir of a trained translator (python -m asc_jax.translate);
                                    # '' with translation_p > 0: the training command first trains
                                    # one into WORKDIR/translator, on the run's own train split
                                    # (cross-fit fold and validation left out), with config.translator.
      translator_seed=0,            # seed of that translator (pair split, initialisation, order).
  ))


def translator_section(preset: str = 'default') -> ml_collections.ConfigDict:
  """Device translator (asc_jax/models/translator.py) and its training on parallel pairs.
  preset 'small': a narrower network trained for fewer steps, a few minutes on a laptop CPU (the
  real-audio benchmark's pairs: about 3 min on 2 cores)."""
  section = ml_collections.ConfigDict(dict(
      source_device='a',            # translated from; pairs join it with every other device.
      channels=(16, 32, 32),        # U-Net level channels; level i > 0 at 1 / 2**i resolution.
      embed_dim=16,                 # target-device embedding that drives FiLM.
      holdout_fraction=0.2,         # segments held out to report the error on.
      loss='l1',                    # l1 | l2, on log-mels.
      learning_rate=1e-3,           # Adam, cosine-decayed to 0 over num_steps.
      batch_size=32,
      num_steps=2000,
      eval_batch_size=64,
      log_every_steps=50,
  ))
  if preset == 'small':
    section.update(dict(channels=(8, 16, 16), batch_size=16, num_steps=600, learning_rate=2e-3))
  elif preset != 'default':
    raise ValueError(f'translator preset {preset!r} is unknown; choose default or small.')
  return section


def distill_section() -> ml_collections.ConfigDict:
  """Knowledge distillation (asc_jax/compress/distillation.py); off by default."""
  return ml_collections.ConfigDict(dict(
      alpha=0.0,                    # weight of T^2 * KL(teacher || student); 0 = off.
                                    # CP-JKU 2023: label-loss weight 0.02, i.e. alpha = 0.98.
      temperature=2.0,              # softmax temperature T; CP-JKU 2023: 2.
      teacher_logits='',            # main training: the directory written by
                                    # python -m asc_jax.compress.teacher (needed when alpha > 0);
                                    # compress exports one from --teacher_workdir when ''.
  ))


def prune_section() -> ml_collections.ConfigDict:
  """Magnitude pruning (asc_jax/compress/pruning.py, Zhu & Gupta schedule); off by default."""
  return ml_collections.ConfigDict(dict(
      target_sparsity=0.0,          # final fraction of prunable weights set to zero; 0 = off.
                                    # BC-ResNet-Mod-8: 299k of its 315k parameters are prunable
                                    # kernels; about 0.85 leaves ~60k non-zero (< 61 KB at int8).
      initial_sparsity=0.0,         # sparsity at start_epoch.
      start_epoch=0.0,              # first mask update.
      end_epoch=0.0,                # target reached here; masks stay fixed afterwards.
      update_every_steps=100,       # steps between mask updates inside [start, end].
      scope='layerwise',            # layerwise (each kernel to the target) | global (one threshold).
      min_size=256,                 # kernels with fewer entries are never pruned.
      never_prune=(),               # regexes on parameter paths such as 'Dense_0/kernel'.
      prune_depthwise=False,        # also prune kernels with one input channel per group.
  ))


def quant_section() -> ml_collections.ConfigDict:
  """int8 quantization (asc_jax/compress/quantization.py); off by default."""
  return ml_collections.ConfigDict(dict(
      enabled=False,                # int8 per-channel weights (every convolution kernel).
      activations='int8',           # int8 (static per-tensor scale at every conv input) | float32.
      qat=True,                     # True: quantization-aware training; False: post-training only.
      calibration_batches=8,        # training batches whose max |x| set the activation scales.
  ))


def distributed_section() -> ml_collections.ConfigDict:
  """Multi-host runs (asc_jax/distributed.py); the defaults need nothing on one host."""
  return ml_collections.ConfigDict(dict(
      coordinator_address='',       # host:port of process 0; '' = $JAX_COORDINATOR_ADDRESS or auto.
      num_processes=0,              # 0 = automatic (TPU VM slice, SLURM, Open MPI); 1 = never join.
      process_id=-1,                # this process's index; -1 = $JAX_PROCESS_ID or auto.
      local_device_ids='',          # e.g. '0,1': devices this process uses; '' = all local ones.
  ))


def experiment(data: ml_collections.ConfigDict, features: ml_collections.ConfigDict,
               model: ml_collections.ConfigDict, train: ml_collections.ConfigDict,
               seed: int = 0) -> ml_collections.ConfigDict:
  """A complete experiment config; augmentation and compression start switched off."""
  return ml_collections.ConfigDict(dict(
      seed=seed, data=data, features=features, model=model, train=train,
      augment=augment_section(), translator=translator_section(), prune=prune_section(),
      distill=distill_section(),
      quant=quant_section(), distributed=distributed_section()))
