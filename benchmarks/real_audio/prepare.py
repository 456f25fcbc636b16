#!/usr/bin/env python3
"""Builds the real-audio device benchmark: UrbanSound8K clips recorded through real microphones.

Real recordings (UrbanSound8K, 10 classes) are passed through real microphone impulse responses
(the MicIRP collection), so that the "devices" of the benchmark are real microphones, with the
device imbalance of TAU Urban Acoustic Scenes 2020 Mobile:

  train       folds --train_folds (default 1, 2): every clip as device `a` (the clip itself), and
              each clip also through each of the 5 seen microphones b, c, s1, s2, s3 with
              probability --p_seen (default 0.1), drawn independently per (clip, microphone);
  validation  carved from the training folds, never from test: whole UrbanSound8K recordings
              (fsID) are held out, about --validation_fraction of the source clips of each
              class (default 0.2); no fsID is on both sides. --validation_devices=drawn
              (default, the benchmark every published figure uses) gives the held-out clips the
              microphones drawn for them as for training; `all_seen` passes every held-out clip
              through a and each of the 5 seen microphones (unseen ones excluded), a
              validation split that weighs the microphones as test does;
  test        folds --test_folds (default 3): every clip through a, the 5 seen microphones and
              the 3 unseen ones s4, s5, s6 (never in training or validation).

Microphones: the *.wav files of --irs sorted by file name; a numpy Generator seeded with --seed
(default 2026) permutes their indices and the first 8 are b, c, s1, s2, s3 (seen), s4, s5, s6
(unseen). The per-clip draws come from the same Generator, after the permutation, over the
training clips in sorted file-name order; the validation recordings from Generators seeded
with [seed, class index]. Everything is deterministic given the two source folders and the flags.

Impulse responses: read as mono, resampled to the output rate (librosa soxr_hq, the project's
resampler), then scaled to unit energy (sum of squares 1), so that a microphone changes the
spectral colour of a clip, not its overall level by an arbitrary file gain. A clip through a
microphone is the full linear convolution of the (4 s, zero-padded) clip with the response,
cut to the first 4 s (the response's onset delay is kept, as CP-JKU's DIR augmentation does).
A clip whose peak would reach 16-bit full scale is scaled down to a peak of 0.99 (counted in
devices.json); none is clipped.

Audio: 22,050 Hz, mono, 4.0 s (shorter clips padded with zeros at the end), 16-bit PCM WAV.

Output (--out, written to a temporary folder beside it and renamed when complete):
  audio/<fold>/<fsID>-<classID>-<occurrenceID>-<sliceID>-<device>.wav
  meta.csv      filename, label, device, split (train | validation | test), fold, group (fsID),
                segment (the source clip, shared by its device copies): the layout the
                audio_folder builder reads (config.data.csv = 'meta.csv').
  devices.json  each device's role and impulse-response file (name, SHA-256, rate, length),
                the protocol settings and the counts per split and device.

  python benchmarks/real_audio/prepare.py --us8k DATA/UrbanSound8K/audio \
      --irs DATA/irs/datasets/dirs --out DATA/real_audio_benchmark
"""

import argparse
import collections
import csv
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile

import librosa
import numpy as np
import scipy.signal
import soundfile
import tqdm

from asc_jax.data import catalog

SAMPLE_RATE = 22050
DURATION_S = 4.0
SUBTYPE = 'PCM_16'
PEAK_LIMIT = 0.99
SEEN_DEVICES = ('b', 'c', 's1', 's2', 's3')
UNSEEN_DEVICES = ('s4', 's5', 's6')
REFERENCE_DEVICE = 'a'
# UrbanSound8K classID -> class name (its metadata CSV; the ids are in alphabetical order).
CLASSES = ('air_conditioner', 'car_horn', 'children_playing', 'dog_bark', 'drilling',
           'engine_idling', 'gun_shot', 'jackhammer', 'siren', 'street_music')
FILENAME = re.compile(r'^(\d+)-(\d)-(\d+)-(\d+)\.wav$', re.IGNORECASE)
META_COLUMNS = ('filename', 'label', 'device', 'split', 'fold', 'group', 'segment')


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--us8k', required=True,
                      help='UrbanSound8K audio folder holding fold1, fold2, ... (or its parent).')
  parser.add_argument('--irs', required=True, help='folder of microphone impulse responses (*.wav).')
  parser.add_argument('--out', required=True, help='output folder (must not exist yet).')
  parser.add_argument('--train_folds', default='1,2')
  parser.add_argument('--test_folds', default='3')
  parser.add_argument('--seed', type=int, default=2026)
  parser.add_argument('--p_seen', type=float, default=0.1,
                      help='probability of each training clip through each seen microphone.')
  parser.add_argument('--validation_fraction', type=float, default=0.2,
                      help='fraction of each class\'s training clips held out, by whole fsID.')
  parser.add_argument('--validation_devices', choices=('drawn', 'all_seen'), default='drawn',
                      help='held-out clips through the microphones drawn for them as for training '
                           '(drawn), or through a and every seen microphone (all_seen).')
  parser.add_argument('--overwrite', action='store_true', help='replace an existing --out.')
  return parser.parse_args(argv)


def fold_dirs(us8k: str, folds: list) -> dict:
  """fold -> its folder, looked up in `us8k` or `us8k`/audio."""
  for root in (us8k, os.path.join(us8k, 'audio')):
    if all(os.path.isdir(os.path.join(root, f'fold{fold}')) for fold in folds):
      return {fold: os.path.join(root, f'fold{fold}') for fold in folds}
  raise FileNotFoundError(
      f'--us8k {us8k}: no fold{{{",".join(folds)}}} folders in it or in its audio/ folder. Point '
      'it at UrbanSound8K/audio (README: where to get UrbanSound8K).')


def source_clips(folder: str, fold: str) -> list:
  """(fold, file name, fsID, class name) of every UrbanSound8K WAV in `folder`, sorted by name."""
  clips = []
  for name in sorted(os.listdir(folder)):
    if name.startswith('.') or not name.lower().endswith('.wav'):
      continue
    match = FILENAME.match(name)
    if match is None:
      raise ValueError(f'{os.path.join(folder, name)}: not an UrbanSound8K file name '
                       '(fsID-classID-occurrenceID-sliceID.wav); remove it from the fold.')
    clips.append((fold, name, match.group(1), CLASSES[int(match.group(2))]))
  if not clips:
    raise FileNotFoundError(f'{folder} holds no WAV files.')
  return clips


def impulse_files(irs: str) -> list:
  names = sorted(name for name in os.listdir(irs)
                 if name.lower().endswith('.wav') and not name.startswith('.'))
  needed = len(SEEN_DEVICES) + len(UNSEEN_DEVICES)
  if len(names) < needed:
    raise FileNotFoundError(f'--irs {irs}: {len(names)} WAV files, at least {needed} needed.')
  return names


def load_mono(path: str, sample_rate: int) -> np.ndarray:
  samples, rate = soundfile.read(path, dtype='float32', always_2d=True)
  mono = samples.mean(axis=1).astype(np.float32)
  if rate != sample_rate:
    mono = librosa.resample(y=mono, orig_sr=rate, target_sr=sample_rate, res_type='soxr_hq')
  return mono.astype(np.float32)


def load_clip(path: str) -> np.ndarray:
  """The clip at SAMPLE_RATE, mono, cropped or zero-padded to DURATION_S."""
  mono = load_mono(path, SAMPLE_RATE)
  length = int(round(SAMPLE_RATE * DURATION_S))
  return np.pad(mono[:length], (0, max(0, length - mono.shape[0])))


def load_impulse(path: str) -> np.ndarray:
  """A response at SAMPLE_RATE scaled to unit energy."""
  response = load_mono(path, SAMPLE_RATE).astype(np.float64)
  energy = float(np.sum(response ** 2))
  if not np.isfinite(energy) or energy <= 0:
    raise ValueError(f'{path}: the impulse response is silent or not finite.')
  return response / np.sqrt(energy)


def through(clip: np.ndarray, response: np.ndarray) -> np.ndarray:
  return scipy.signal.fftconvolve(clip.astype(np.float64), response, mode='full')[:clip.shape[0]]


def choose_devices(impulses: list, seed: int) -> tuple:
  """({device: IR file name}, the Generator to draw the per-clip choices from)."""
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(impulses))
  devices = SEEN_DEVICES + UNSEEN_DEVICES
  return {device: impulses[index] for device, index in zip(devices, order)}, rng


def validation_groups(train_clips: list, fraction: float, seed: int) -> set:
  """fsIDs held out: per class, whole recordings in a seeded order, about `fraction` of its
  clips (asc_jax.data.catalog.hold_out_groups, the rule every asc_jax builder uses).

  A recording counts under the class most of its clips have (UrbanSound8K recordings almost
  always hold one class).
  """
  clips_of = collections.defaultdict(collections.Counter)
  for _, _, fsid, label in train_clips:
    clips_of[fsid][label] += 1
  sizes = {fsid: sum(counts.values()) for fsid, counts in clips_of.items()}
  stratum = {fsid: max(sorted(counts), key=counts.__getitem__) for fsid, counts in clips_of.items()}
  return catalog.hold_out_groups(sizes, stratum, fraction, seed)


def plan(train_clips: list, test_clips: list, rng: np.random.Generator, p_seen: float,
         held: set, validation_devices: str = 'drawn') -> list:
  """Rows (fold, source name, fsID, label, device, split) of every output clip. The draws are
  made for every training-fold clip either way, so the training rows do not depend on
  `validation_devices`."""
  rows = []
  draws = rng.random((len(train_clips), len(SEEN_DEVICES))) < p_seen
  for (fold, name, fsid, label), chosen in zip(train_clips, draws):
    split = 'validation' if fsid in held else 'train'
    if split == 'validation' and validation_devices == 'all_seen':
      chosen = [True] * len(SEEN_DEVICES)
    devices = (REFERENCE_DEVICE,) + tuple(d for d, on in zip(SEEN_DEVICES, chosen) if on)
    rows.extend((fold, name, fsid, label, device, split) for device in devices)
  for fold, name, fsid, label in test_clips:
    rows.extend((fold, name, fsid, label, device, 'test')
                for device in (REFERENCE_DEVICE,) + SEEN_DEVICES + UNSEEN_DEVICES)
  return rows


def output_name(fold: str, name: str, device: str) -> str:
  return f'audio/fold{fold}/{os.path.splitext(name)[0]}-{device}.wav'


def sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as file:
    for chunk in iter(lambda: file.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def write_benchmark(args: argparse.Namespace, folders: dict, staging: str) -> dict:
  """Writes audio, meta.csv and devices.json into `staging`; returns the devices.json content."""
  train_folds, test_folds = parse_folds(args.train_folds), parse_folds(args.test_folds)
  train_clips = [clip for fold in train_folds for clip in source_clips(folders[fold], fold)]
  test_clips = [clip for fold in test_folds for clip in source_clips(folders[fold], fold)]
  impulses = impulse_files(args.irs)
  device_files, rng = choose_devices(impulses, args.seed)
  responses = {device: load_impulse(os.path.join(args.irs, name))
               for device, name in device_files.items()}
  held = validation_groups(train_clips, args.validation_fraction, args.seed)
  rows = plan(train_clips, test_clips, rng, args.p_seen, held, args.validation_devices)

  by_source = collections.defaultdict(list)
  for row in rows:
    by_source[row[:4]].append(row)
  limited = collections.Counter()
  meta = []
  with tqdm.tqdm(total=len(rows), desc='real-audio benchmark', unit='clip') as progress:
    for (fold, name, fsid, label), copies in by_source.items():
      clip = load_clip(os.path.join(folders[fold], name))
      for _, _, _, _, device, split in copies:
        audio = clip if device == REFERENCE_DEVICE else through(clip, responses[device])
        peak = float(np.max(np.abs(audio)))
        if peak >= PEAK_LIMIT:
          audio = audio * (PEAK_LIMIT / peak)
          limited[device] += 1
        filename = output_name(fold, name, device)
        path = os.path.join(staging, filename)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        soundfile.write(path, audio.astype(np.float32), SAMPLE_RATE, subtype=SUBTYPE)
        meta.append((filename, label, device, split, fold, fsid, os.path.splitext(name)[0]))
        progress.update()
  meta.sort(key=lambda row: ({'train': 0, 'validation': 1, 'test': 2}[row[3]], row[0]))
  with open(os.path.join(staging, 'meta.csv'), 'w', newline='') as file:
    writer = csv.writer(file, lineterminator='\n')
    writer.writerow(META_COLUMNS)
    writer.writerows(meta)

  counts = collections.defaultdict(collections.Counter)
  for row in meta:
    counts[row[3]][row[2]] += 1
  devices = {REFERENCE_DEVICE: {'role': 'reference', 'impulse_response': None,
                                'description': 'the UrbanSound8K clip itself'}}
  for device, name in device_files.items():
    info = soundfile.info(os.path.join(args.irs, name))
    devices[device] = {'role': 'seen' if device in SEEN_DEVICES else 'unseen',
                       'impulse_response': name,
                       'sha256': sha256(os.path.join(args.irs, name)),
                       'source_sample_rate': int(info.samplerate), 'source_frames': int(info.frames)}
  groups = collections.defaultdict(set)
  for row in meta:
    groups[row[3]].add(row[5])
  report = {
      'devices': devices,
      'device_groups': {'reference': [REFERENCE_DEVICE], 'seen': list(SEEN_DEVICES),
                        'unseen': list(UNSEEN_DEVICES)},
      'protocol': {
          'sample_rate': SAMPLE_RATE, 'duration_s': DURATION_S, 'subtype': SUBTYPE,
          'seed': args.seed, 'p_seen': args.p_seen,
          'validation_fraction': args.validation_fraction,
          'validation_devices': args.validation_devices,
          'train_folds': train_folds, 'test_folds': test_folds,
          'impulse_responses_available': len(impulses),
          'impulse_response_order': 'sorted file names; numpy default_rng(seed).permutation, '
                                    'first 8 -> b, c, s1, s2, s3, s4, s5, s6',
          'impulse_response_normalisation': 'resampled to sample_rate, scaled to unit energy; '
                                            'full convolution cut to the clip length',
          'peak_limit': PEAK_LIMIT, 'clips_scaled_to_peak_limit': dict(sorted(limited.items())),
      },
      'source_clips': {'train_folds': len(train_clips), 'test_folds': len(test_clips),
                       'validation_recordings': len(held)},
      'recordings': {split: len(ids) for split, ids in sorted(groups.items())},
      'counts': {split: dict(sorted(counts[split].items()))
                 for split in ('train', 'validation', 'test') if split in counts},
  }
  with open(os.path.join(staging, 'devices.json'), 'w') as file:
    json.dump(report, file, indent=2, sort_keys=False)
    file.write('\n')
  return report


def parse_folds(text: str) -> list:
  return [fold.strip() for fold in text.split(',') if fold.strip()]


def main(argv=None) -> int:
  args = parse_args(argv)
  out = os.path.abspath(os.path.expanduser(args.out))
  if os.path.exists(out) and not args.overwrite:
    print(f'{out} already exists: pass --overwrite to replace it, or choose another --out.',
          file=sys.stderr)
    return 1
  folders = fold_dirs(os.path.expanduser(args.us8k),
                      parse_folds(args.train_folds) + parse_folds(args.test_folds))
  if set(parse_folds(args.train_folds)) & set(parse_folds(args.test_folds)):
    raise ValueError('--train_folds and --test_folds overlap.')
  os.makedirs(os.path.dirname(out), exist_ok=True)
  staging = tempfile.mkdtemp(dir=os.path.dirname(out), prefix=f'.{os.path.basename(out)}.tmp-')
  try:
    report = write_benchmark(args, folders, staging)
    if os.path.exists(out):
      old = tempfile.mkdtemp(dir=os.path.dirname(out), prefix=f'.{os.path.basename(out)}.old-')
      os.rename(out, os.path.join(old, 'previous'))
      os.rename(staging, out)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.rename(staging, out)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  print(json.dumps({'out': out, 'counts': report['counts'],
                    'devices': {d: v['impulse_response'] for d, v in report['devices'].items()}},
                   indent=1))
  return 0


if __name__ == '__main__':
  sys.exit(main())
