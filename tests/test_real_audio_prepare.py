"""benchmarks/real_audio/prepare.py run for real on tiny UrbanSound8K-like and MicIRP-like fixtures."""

import collections
import csv
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

import fixtures
from asc_jax.data import datasets

ROOT = os.path.join(os.path.dirname(__file__), '..')
SCRIPT = os.path.join(ROOT, 'benchmarks', 'real_audio', 'prepare.py')
UNSEEN = {'s4', 's5', 's6'}
SEEN = {'b', 'c', 's1', 's2', 's3'}


def write_sources(root) -> tuple:
  """fold1-3 of UrbanSound8K-named tones (fold1, 2: 8 recordings x 2 slices; fold3: 3 clips),
  some stereo, 44.1 kHz or shorter than 4 s; 10 impulse responses at 44.1 / 48 kHz."""
  us8k, irs = root / 'us8k', root / 'irs'
  rng = np.random.default_rng(0)
  for fold in (1, 2):
    for recording in range(8):
      fsid, class_id = 1000 * fold + recording, recording % 4
      for piece in range(2):
        rate, channels = ((44100, 2) if piece else (22050, 1))
        fixtures.write_tone(str(us8k / f'fold{fold}' / f'{fsid}-{class_id}-0-{piece}.wav'),
                            220.0 * (class_id + 1), rate, channels, 'PCM_16',
                            seconds=1.5 if recording % 2 else 4.5)
  for index in range(3):
    fixtures.write_tone(str(us8k / 'fold3' / f'{9000 + index}-{index}-0-0.wav'),
                        220.0 * (index + 1), 22050, 1, 'PCM_16', seconds=4.0)
  (us8k / 'fold3' / '.DS_Store').write_bytes(b'not audio')
  os.makedirs(irs)
  for index in range(10):
    rate = 48000 if index % 3 == 0 else 44100
    response = np.zeros(2000)
    response[5 + index] = 1.0
    response[20:220] += 0.3 * rng.standard_normal(200) * np.exp(-np.arange(200) / 40)
    soundfile.write(str(irs / f'mic_{index:02d}.wav'), response * 0.2, rate, subtype='PCM_24')
  return us8k, irs


def run_prepare(us8k, irs, out, *extra) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, SCRIPT, f'--us8k={us8k}', f'--irs={irs}',
                         f'--out={out}', *extra], capture_output=True, text=True, timeout=300,
                        check=True, cwd=ROOT)


def read_meta(out) -> list:
  with open(os.path.join(out, 'meta.csv'), newline='') as file:
    return list(csv.DictReader(file))


def tree_digest(out) -> dict:
  digests = {}
  for folder, _, names in os.walk(out):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, 'rb') as file:
        digests[os.path.relpath(path, out)] = hashlib.sha256(file.read()).hexdigest()
  return digests


@pytest.fixture(scope='module')
def benchmark(tmp_path_factory):
  root = tmp_path_factory.mktemp('real_audio')
  us8k, irs = write_sources(root)
  out = root / 'bench'
  completed = run_prepare(us8k, irs, out, '--p_seen=0.5', '--validation_fraction=0.25')
  return root, us8k, irs, out, completed


def test_counts_devices_and_splits_follow_the_protocol(benchmark):
  _, _, _, out, completed = benchmark
  rows = read_meta(out)
  by_split = collections.defaultdict(collections.Counter)
  for row in rows:
    by_split[row['split']][row['device']] += 1
  assert set(by_split) == {'train', 'validation', 'test'}
  # Test: the 3 fold-3 clips through a, the 5 seen and the 3 unseen microphones.
  assert by_split['test'] == {device: 3 for device in {'a'} | SEEN | UNSEEN}
  # Training folds: all 32 clips as device a, split by recording; no unseen microphone.
  assert by_split['train']['a'] + by_split['validation']['a'] == 32
  for split in ('train', 'validation'):
    assert not UNSEEN & set(by_split[split])
    assert set(by_split[split]) <= {'a'} | SEEN
  seen_copies = sum(by_split['train'][d] + by_split['validation'][d] for d in SEEN)
  assert 40 <= seen_copies <= 120   # 32 clips x 5 microphones x p 0.5 = 80 expected
  fsids = {split: {row['group'] for row in rows if row['split'] == split} for split in by_split}
  assert not fsids['train'] & fsids['validation']
  assert len(fsids['validation']) == 4   # 0.25 of the 4 recordings of each of the 4 classes
  for row in rows:   # copies of one clip share its segment and its split
    assert row['filename'] == f'audio/fold{row["fold"]}/{row["segment"]}-{row["device"]}.wav'
    assert row['label'] in ('air_conditioner', 'car_horn', 'children_playing', 'dog_bark')
  assert {row['split'] for row in rows if row['fold'] == '3'} == {'test'}
  report = json.loads((out / 'devices.json').read_text())
  assert report['counts'] == {split: dict(sorted(counts.items()))
                              for split, counts in by_split.items()}
  assert 'counts' in completed.stdout


def test_devices_json_names_each_microphone_and_audio_is_22k_4s_16bit(benchmark):
  _, _, irs, out, _ = benchmark
  report = json.loads((out / 'devices.json').read_text())
  devices = report['devices']
  assert devices['a']['role'] == 'reference' and devices['a']['impulse_response'] is None
  files = [devices[d]['impulse_response'] for d in sorted(SEEN | UNSEEN)]
  assert len(set(files)) == 8 and all(os.path.isfile(irs / name) for name in files)
  assert {d for d, v in devices.items() if v['role'] == 'seen'} == SEEN
  assert {d for d, v in devices.items() if v['role'] == 'unseen'} == UNSEEN
  # The choice: sorted IR names permuted by default_rng(2026); first 8 -> b, c, s1..s6.
  order = np.random.default_rng(2026).permutation(10)
  names = sorted(os.listdir(irs))
  assert [devices[d]['impulse_response'] for d in ('b', 'c', 's1', 's2', 's3', 's4', 's5', 's6')
          ] == [names[i] for i in order[:8]]
  for row in read_meta(out)[::7]:
    info = soundfile.info(str(out / row['filename']))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (
        22050, 1, 88200, 'PCM_16')
  a, s4 = (soundfile.read(str(out / f'audio/fold3/9000-0-0-0-{d}.wav'))[0] for d in ('a', 's4'))
  assert not np.allclose(a, s4, atol=1e-3)   # a microphone changes the clip


def test_all_seen_validation_devices_change_validation_only(benchmark):
  root, us8k, irs, out, _ = benchmark
  all_seen = root / 'all_seen'
  run_prepare(us8k, irs, all_seen, '--p_seen=0.5', '--validation_fraction=0.25',
              '--validation_devices=all_seen')
  split_rows = lambda rows, split: sorted(tuple(row.values()) for row in rows
                                          if row['split'] == split)
  sampled, balanced = read_meta(out), read_meta(all_seen)
  assert split_rows(balanced, 'train') == split_rows(sampled, 'train')
  assert split_rows(balanced, 'test') == split_rows(sampled, 'test')
  assert set(split_rows(sampled, 'validation')) < set(split_rows(balanced, 'validation'))
  devices = collections.Counter(row['device'] for row in balanced if row['split'] == 'validation')
  assert devices == {device: devices['a'] for device in {'a'} | SEEN}
  assert json.loads((all_seen / 'devices.json').read_text())['protocol'][
      'validation_devices'] == 'all_seen'


def test_same_inputs_give_identical_outputs_and_existing_out_is_kept(benchmark):
  root, us8k, irs, out, _ = benchmark
  again = root / 'again'
  run_prepare(us8k, irs, again, '--p_seen=0.5', '--validation_fraction=0.25')
  assert tree_digest(out) == tree_digest(again)
  refused = subprocess.run([sys.executable, SCRIPT, f'--us8k={us8k}', f'--irs={irs}',
                            f'--out={out}'], capture_output=True, text=True, timeout=120)
  assert refused.returncode == 1 and '--overwrite' in refused.stderr
  other_seed = root / 'other_seed'
  run_prepare(us8k, irs, other_seed, '--p_seen=0.5', '--seed=7')
  assert json.loads((other_seed / 'devices.json').read_text())['devices'] != json.loads(
      (out / 'devices.json').read_text())['devices']
  assert not [name for name in os.listdir(root) if name.startswith('.')]   # no temp dirs left


def test_audio_folder_builder_reads_the_benchmark(benchmark, tmp_path):
  _, _, _, out, _ = benchmark
  config = fixtures.data_config('audio_folder', str(tmp_path / 'tfds'), str(out), csv='meta.csv')
  dataset = datasets.prepare(config)
  rows = read_meta(out)
  assert dataset.num_examples == dict(collections.Counter(row['split'] for row in rows))
  assert dataset.device_names == ('a', 'b', 'c', 's1', 's2', 's3', 's4', 's5', 's6')
  groups = {split: {dataset.sources[split][i]['identifier'] for i in range(len(source))}
            for split, source in dataset.sources.items()}
  assert not groups['train'] & groups['validation']
  segments = collections.defaultdict(set)
  for i in range(len(dataset.sources['test'])):
    record = dataset.sources['test'][i]
    segments[record['segment_id']].add(record['device'])
  assert all(len(devices) == 9 for devices in segments.values())
