"""Synthetic acoustic scenes recorded by simulated devices (numpy only; the embedded default data).

Owns the sound model behind the `synthetic_scenes` TFDS builder: which clips exist in each split
(`clip_specs`) and the waveform of each clip (`render_clip`). Everything is deterministic from a
preset's seed and stable SHA-256 hashes of names, never Python's hash().

Sound model. A clip is the sum of
- a background texture: shaped noise whose spectral envelope (tilt + bumps in log-frequency) and
  slow level modulation are class-specific, and
- class-specific sound events with their own temporal structure (periodic or random onsets):
  harmonic tones with glides and vibrato (beeps, chimes, horns, birds, speech-like voices, music),
  impulsive clicks (footsteps, rail joints) and noise swells (passing vehicles).
Each recording location shifts its scene's sound (spectral tilt, event pitch, event rate, event
level), and each segment draws its own onsets, phases and level. The underlying clip depends only
on the segment id; a device is a recording chain applied on top (smooth random EQ, high- and
low-pass band limits, gain, noise floor, soft clipping), so parallel recordings of one segment
exist on several devices. Device 'a' is a near-flat reference; s4-s6 never appear in training.
Device differences are mostly per-frequency gains (which per-frequency instance normalization
removes) plus noise floors and distortion (which it cannot fully remove); classes differ mostly
in temporal structure and relative spectral shape, not in absolute level.
"""

import dataclasses
import hashlib

import numpy as np

SCENES = ('airport', 'bus', 'metro', 'metro_station', 'park', 'public_square', 'shopping_mall',
          'street_pedestrian', 'street_traffic', 'tram')
DEVICES = ('a', 'b', 'c', 's1', 's2', 's3', 's4', 's5', 's6')
SEEN_DEVICES = ('b', 'c', 's1', 's2', 's3')
CITIES = ('barcelona', 'helsinki', 'lisbon', 'london', 'lyon', 'milan', 'paris', 'prague',
          'stockholm', 'vienna')
SPLITS = ('train', 'validation', 'test')
# Part of every synthetic builder config's name: bump it whenever rendering or the clip lists
# change, so that a dataset prepared by an older version is never reused. 2: deeper EQ on s4-s6
# (calibration). 3: a validation split (train and test clips are the same as in 2).
GENERATOR_VERSION = 3
# Validation clips per preset, as a fraction of its training clips (device a and each seen device).
VALIDATION_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class SyntheticPreset:
  """Size and recording format of one synthetic dataset.

  Train clips follow TAU fold 1: device 'a' dominant, `train_clips_per_seen_device` parallel
  recordings on each of b, c, s1, s2, s3, none on s4-s6. Test segments come from locations
  never used in training and are each recorded by all nine devices. Validation follows the
  training distribution (VALIDATION_FRACTION as many clips per device, a dominant, nothing on
  s4-s6) at one more location per scene and city, used by neither train nor test.
  """
  sample_rate: int
  duration_s: float
  seed: int
  num_cities: int
  locations_per_city: int          # per scene and city; the last one of each city is for test.
  train_clips_device_a: int
  train_clips_per_seen_device: int
  test_clips_per_device: int
  event_snr_db: float = 0.0        # mean level of the events relative to the background.

  def __post_init__(self):
    if not 1 <= self.num_cities <= len(CITIES) or not 2 <= self.locations_per_city <= 9:
      raise ValueError(f'{self}: num_cities must lie in [1, {len(CITIES)}] and '
                       'locations_per_city in [2, 9] (location ids are <scene><city><k>; '
                       'k = locations_per_city is the validation location).')

  @property
  def validation_clips_device_a(self) -> int:
    """VALIDATION_FRACTION of the training device-a clips, a whole number per scene."""
    per_scene = max(1, round(VALIDATION_FRACTION * self.train_clips_device_a / len(SCENES)))
    return per_scene * len(SCENES)

  @property
  def validation_clips_per_seen_device(self) -> int:
    return max(1, round(VALIDATION_FRACTION * self.train_clips_per_seen_device))


PRESETS = {
    'tiny': SyntheticPreset(sample_rate=8000, duration_s=1.0, seed=1, num_cities=3,
                            locations_per_city=2, train_clips_device_a=40,
                            train_clips_per_seen_device=4, test_clips_per_device=10),
    'small': SyntheticPreset(sample_rate=16000, duration_s=4.0, seed=2, num_cities=6,
                             locations_per_city=4, train_clips_device_a=2000,
                             train_clips_per_seen_device=150, test_clips_per_device=100,
                             event_snr_db=3.0),
    'tau_shaped': SyntheticPreset(sample_rate=44100, duration_s=10.0, seed=3, num_cities=10,
                                  locations_per_city=4, train_clips_device_a=1020,
                                  train_clips_per_seen_device=75, test_clips_per_device=33),
}


@dataclasses.dataclass(frozen=True)
class ClipSpec:
  """One recording: a segment of a scene at a location, by one device (TAU naming)."""
  scene: str
  city: str
  location: int
  segment: int
  device: str

  @property
  def identifier(self) -> str:
    return f'{self.city}-{self.location}'

  @property
  def segment_id(self) -> str:
    return f'{self.scene}-{self.city}-{self.location}-{self.segment}'

  @property
  def filename(self) -> str:
    return f'audio/{self.segment_id}-{self.device}.wav'


def stable_hash(*parts) -> int:
  """A 64-bit integer from the SHA-256 of the parts' text (stable across runs and machines)."""
  text = '\x1f'.join(str(part) for part in parts)
  return int.from_bytes(hashlib.sha256(text.encode('utf-8')).digest()[:8], 'little')


def rng_for(preset: SyntheticPreset, *parts) -> np.random.Generator:
  return np.random.default_rng([preset.seed, stable_hash(*parts)])


def get_preset(preset_name: str) -> SyntheticPreset:
  if preset_name not in PRESETS:
    raise ValueError(f'unknown synthetic preset {preset_name!r}; choose one of {sorted(PRESETS)}.')
  return PRESETS[preset_name]


# ----------------------------------------------------------------------------- clip lists


def _locations(preset: SyntheticPreset, scene_index: int, split: str) -> list[tuple[str, int]]:
  """(city, location) pairs of one scene in a split: of each city's locations k = 0..L-1 (L =
  locations_per_city) the last is test, the others train; validation is k = L."""
  cities = CITIES[:preset.num_cities]
  first = 1000 + 100 * scene_index
  per_city = {'train': range(preset.locations_per_city - 1),
              'test': [preset.locations_per_city - 1],
              'validation': [preset.locations_per_city]}[split]
  return [(city, first + 10 * city_index + k)
          for city_index, city in enumerate(cities) for k in per_city]


def _segments(preset: SyntheticPreset, split: str, total: int) -> list[tuple[str, str, int, int]]:
  """`total` segments (scene, city, location, segment) spread round-robin over scenes and
  their locations of `split`."""
  segments = []
  counters = {}
  for i in range(total):
    scene_index = i % len(SCENES)
    locations = _locations(preset, scene_index, split)
    city, location = locations[(i // len(SCENES)) % len(locations)]
    count = counters.get((city, location), 0)
    counters[(city, location)] = count + 1
    segments.append((SCENES[scene_index], city, location, 1000 * location + count))
  return segments


def clip_specs(preset_name: str, split: str) -> list[ClipSpec]:
  """Every clip of a split. 'train' and 'validation': all device-a segments, then for each of
  b, c, s1-s3 a seeded subset of them recorded in parallel; 'test': every test segment on all
  nine devices."""
  preset = get_preset(preset_name)
  if split not in SPLITS:
    raise ValueError(f'unknown split {split!r}; choose one of {SPLITS}.')
  if split == 'test':
    segments = _segments(preset, 'test', preset.test_clips_per_device)
    return [ClipSpec(*segment, device) for device in DEVICES for segment in segments]
  if split == 'validation':
    segments = _segments(preset, 'validation', preset.validation_clips_device_a)
    per_seen, stream = preset.validation_clips_per_seen_device, 'parallel-validation'
  else:
    segments = _segments(preset, 'train', preset.train_clips_device_a)
    per_seen, stream = preset.train_clips_per_seen_device, 'parallel'
  specs = [ClipSpec(*segment, 'a') for segment in segments]
  for device in SEEN_DEVICES:
    order = rng_for(preset, stream, device).permutation(len(segments))
    chosen = sorted(order[:min(per_seen, len(segments))])
    specs.extend(ClipSpec(*segments[i], device) for i in chosen)
  return specs


# ----------------------------------------------------------------------------- scene model

# Background: spectral tilt in dB per octave around 1 kHz; bumps (centre Hz, width in octaves,
# gain dB); level modulation (kind 'sine' | 'random', rate Hz, depth dB).
# Events: kind 'tone' | 'click' | 'swell'; timing 'periodic' | 'poisson' at `rate` per second;
# tones: f0 Hz, partial amplitudes, duration s, glide (end f0 / start f0), vibrato (rate, depth
# as a fraction of f0); clicks and swells: band centre Hz and width in octaves; level dB.
SCENE_MODELS = {
    'airport': dict(
        tilt=-3.0, bumps=((300, 1.2, 8),), modulation=('random', 0.3, 3.0),
        events=(dict(kind='tone', timing='poisson', rate=0.5, f0=660, partials=(1, 0.5, 0.25),
                     duration=0.6, glide=1.0, vibrato=(0, 0), level=0),
                dict(kind='tone', timing='poisson', rate=1.5, f0=160, partials=(1, .7, .5, .3),
                     duration=0.25, glide=1.2, vibrato=(5, 0.03), level=-6))),
    'bus': dict(
        tilt=-6.0, bumps=((90, 0.8, 12),), modulation=('sine', 0.15, 6.0),
        events=(dict(kind='click', timing='periodic', rate=1.6, band=2500, width=0.6,
                     duration=0.02, level=0),
                dict(kind='tone', timing='poisson', rate=0.6, f0=55, partials=(1, .8, .6, .5, .3),
                     duration=1.5, glide=1.5, vibrato=(0, 0), level=-2))),
    'metro': dict(
        tilt=-4.0, bumps=((700, 1.5, 8),), modulation=('sine', 1.2, 4.0),
        events=(dict(kind='click', timing='periodic', rate=2.4, band=900, width=1.0,
                     duration=0.04, level=2),
                dict(kind='tone', timing='poisson', rate=0.3, f0=2600, partials=(1,),
                     duration=1.0, glide=1.15, vibrato=(3, 0.01), level=-8))),
    'metro_station': dict(
        tilt=-3.5, bumps=((500, 1.5, 6),), modulation=('random', 2.0, 4.0),
        events=(dict(kind='tone', timing='poisson', rate=1.2, f0=140, partials=(1, .6, .5, .4, .3),
                     duration=0.3, glide=0.9, vibrato=(5, 0.05), level=-3),
                dict(kind='swell', timing='poisson', rate=0.25, band=400, width=1.5,
                     duration=1.5, level=2))),
    'park': dict(
        tilt=-1.5, bumps=((3000, 1.0, 3),), modulation=('random', 0.2, 2.0),
        events=(dict(kind='tone', timing='poisson', rate=2.5, f0=3200, partials=(1, 0.2),
                     duration=0.08, glide=0.6, vibrato=(0, 0), level=0),
                dict(kind='tone', timing='poisson', rate=0.4, f0=1800, partials=(1,),
                     duration=0.3, glide=1.3, vibrato=(12, 0.04), level=-4))),
    'public_square': dict(
        tilt=-3.0, bumps=((600, 1.2, 5),), modulation=('random', 4.0, 5.0),
        events=(dict(kind='click', timing='poisson', rate=1.5, band=1500, width=1.0,
                     duration=0.015, level=-4),
                dict(kind='tone', timing='poisson', rate=0.8, f0=200, partials=(1, .6, .4, .3),
                     duration=0.35, glide=0.85, vibrato=(4, 0.06), level=-2))),
    'shopping_mall': dict(
        tilt=-3.0, bumps=((800, 1.5, 5),), modulation=('random', 1.0, 2.5),
        events=(dict(kind='tone', timing='periodic', rate=2.0, f0=330, partials=(1, .5, .3, .2),
                     duration=0.45, glide=1.0, vibrato=(0, 0), level=-2),
                dict(kind='tone', timing='poisson', rate=0.8, f0=190, partials=(1, .6, .4, .3),
                     duration=0.35, glide=1.1, vibrato=(4, 0.05), level=-6))),
    'street_pedestrian': dict(
        tilt=-3.5, bumps=((500, 1.2, 5),), modulation=('random', 3.0, 4.0),
        events=(dict(kind='click', timing='periodic', rate=2.2, band=1200, width=1.2,
                     duration=0.015, level=-1),
                dict(kind='swell', timing='poisson', rate=0.2, band=250, width=1.5,
                     duration=2.0, level=0))),
    'street_traffic': dict(
        tilt=-5.0, bumps=((150, 1.2, 10),), modulation=('random', 0.25, 6.0),
        events=(dict(kind='swell', timing='poisson', rate=0.5, band=300, width=2.0,
                     duration=2.5, level=4),
                dict(kind='tone', timing='poisson', rate=0.2, f0=420, partials=(1, .8, .6, .4),
                     duration=0.4, glide=1.0, vibrato=(0, 0), level=0))),
    'tram': dict(
        tilt=-4.5, bumps=((250, 1.2, 8),), modulation=('sine', 0.6, 3.0),
        events=(dict(kind='tone', timing='poisson', rate=0.3, f0=1250, partials=(1, 0.4, 0.3),
                     duration=0.8, glide=1.0, vibrato=(0, 0), level=0),
                dict(kind='tone', timing='periodic', rate=0.4, f0=480, partials=(1, 0.3),
                     duration=2.0, glide=1.6, vibrato=(0, 0), level=-8))),
}

# Recording chains: EQ ripple depth (dB), high-pass and low-pass corners (Hz; None = Nyquist),
# gain (dB), noise floor (dB re full scale), soft-clipping drive (0 = linear). The unseen s4-s6
# have the deepest EQ: calibrated so that BC-ResNet-Mod-2 without ResNorm loses well over 10
# points from device a to them on `small` (README, 'ResNorm on the synthetic scenes').
DEVICE_CHAINS = {
    'a': dict(eq_db=0.5, highpass=20, lowpass=None, gain_db=0, noise_db=-80, drive=0.0),
    'b': dict(eq_db=5.0, highpass=120, lowpass=7000, gain_db=-3, noise_db=-60, drive=0.3),
    'c': dict(eq_db=6.0, highpass=200, lowpass=6000, gain_db=2, noise_db=-58, drive=0.5),
    's1': dict(eq_db=7.0, highpass=90, lowpass=5500, gain_db=-5, noise_db=-62, drive=0.2),
    's2': dict(eq_db=7.0, highpass=250, lowpass=7500, gain_db=4, noise_db=-56, drive=0.6),
    's3': dict(eq_db=8.0, highpass=60, lowpass=4500, gain_db=-2, noise_db=-60, drive=0.4),
    's4': dict(eq_db=13.0, highpass=300, lowpass=5000, gain_db=3, noise_db=-55, drive=0.8),
    's5': dict(eq_db=13.0, highpass=150, lowpass=3800, gain_db=-4, noise_db=-54, drive=0.5),
    's6': dict(eq_db=14.0, highpass=400, lowpass=6500, gain_db=5, noise_db=-52, drive=1.0),
}
REFERENCE_RMS = 0.05


def _frequencies(num_samples: int, sample_rate: int) -> np.ndarray:
  return np.maximum(np.fft.rfftfreq(num_samples, 1.0 / sample_rate), 10.0)


def _shaped_noise(rng: np.random.Generator, num_samples: int, sample_rate: int,
                  gain_db: np.ndarray) -> np.ndarray:
  """White noise filtered to the power response `gain_db` (one value per rfft bin)."""
  spectrum = np.fft.rfft(rng.standard_normal(num_samples))
  noise = np.fft.irfft(spectrum * 10.0 ** (gain_db / 20.0), n=num_samples)
  return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def _envelope_db(freqs: np.ndarray, tilt: float, bumps) -> np.ndarray:
  octaves = np.log2(freqs / 1000.0)
  curve = tilt * octaves
  for centre, width, gain in bumps:
    curve = curve + gain * np.exp(-0.5 * (np.log2(freqs / centre) / width) ** 2)
  return curve


def _modulation(rng: np.random.Generator, kind: str, rate: float, depth_db: float,
                times: np.ndarray) -> np.ndarray:
  """A slow gain curve over `times`, as a linear factor."""
  if kind == 'sine':
    shape = np.sin(2 * np.pi * rate * times + rng.uniform(0, 2 * np.pi))
  else:
    knots = np.arange(-1.0, times[-1] * rate + 2.0) / rate
    shape = np.interp(times, knots, rng.standard_normal(len(knots)))
  return 10.0 ** (depth_db * shape / 20.0)


def _onsets(rng: np.random.Generator, timing: str, rate: float, duration_s: float) -> np.ndarray:
  if timing == 'periodic':
    period = 1.0 / rate
    start = rng.uniform(0, period)
    onsets = np.arange(start, duration_s, period)
    return onsets + rng.normal(0, 0.03 * period, len(onsets))
  return np.sort(rng.uniform(0, duration_s, rng.poisson(rate * duration_s)))


def _tone(rng: np.random.Generator, event: dict, pitch: float, sample_rate: int) -> np.ndarray:
  length = max(8, int(event['duration'] * sample_rate))
  t = np.arange(length) / sample_rate
  f0 = event['f0'] * pitch * rng.uniform(0.94, 1.06)
  glide = event['glide'] ** (t / t[-1])
  vibrato_rate, vibrato_depth = event['vibrato']
  freq = f0 * glide * (1 + vibrato_depth * np.sin(2 * np.pi * vibrato_rate * t))
  phase = 2 * np.pi * np.cumsum(freq) / sample_rate
  nyquist = 0.45 * sample_rate
  wave = sum(amplitude * np.sin(k * phase) * (k * freq < nyquist)
             for k, amplitude in enumerate(event['partials'], start=1))
  attack = np.minimum(1.0, t / 0.01)
  return wave * attack * np.exp(-3.0 * t / event['duration'])


def _band_burst(rng: np.random.Generator, event: dict, pitch: float, sample_rate: int
                ) -> np.ndarray:
  """A click (fast decay) or a swell (raised-cosine envelope) of band-limited noise."""
  length = max(16, int(event['duration'] * rng.uniform(0.7, 1.4) * sample_rate))
  freqs = _frequencies(length, sample_rate)
  shape_db = -12.0 * (np.log2(freqs / (event['band'] * pitch)) / event['width']) ** 2
  burst = _shaped_noise(rng, length, sample_rate, np.maximum(shape_db, -60.0))
  t = np.arange(length) / length
  if event['kind'] == 'click':
    return burst * np.exp(-6.0 * t)
  return burst * np.sin(np.pi * t) ** 2


def _location_variation(preset: SyntheticPreset, scene: str, city: str, location: int) -> dict:
  """How a location shifts its scene: tilt, event pitch, rate and level."""
  rng = rng_for(preset, 'location', scene, city, location)
  return dict(tilt=rng.normal(0, 1.0), pitch=2.0 ** rng.normal(0, 0.12),
              rate=2.0 ** rng.normal(0, 0.35), level_db=rng.normal(0, 2.5, size=2),
              bump_db=rng.normal(0, 2.0))


def render_scene(spec: ClipSpec, preset: SyntheticPreset) -> np.ndarray:
  """The device-independent clip of `spec`'s segment (float64, RMS = REFERENCE_RMS * level)."""
  model = SCENE_MODELS[spec.scene]
  place = _location_variation(preset, spec.scene, spec.city, spec.location)
  rng = rng_for(preset, 'segment', spec.segment_id)
  sr = preset.sample_rate
  num_samples = int(round(preset.duration_s * sr))
  times = np.arange(num_samples) / sr
  bumps = [(c, w, g + place['bump_db']) for c, w, g in model['bumps']]
  background = _shaped_noise(rng, num_samples, sr, _envelope_db(
      _frequencies(num_samples, sr), model['tilt'] + place['tilt'], bumps))
  background *= _modulation(rng, *model['modulation'], times)
  events = np.zeros(num_samples)
  for event, level_db in zip(model['events'], place['level_db']):
    rate = event['rate'] * place['rate']
    for onset in _onsets(rng, event['timing'], rate, preset.duration_s):
      sound = (_tone(rng, event, place['pitch'], sr) if event['kind'] == 'tone'
               else _band_burst(rng, event, place['pitch'], sr))
      start = int(onset * sr)
      if start < 0 or start >= num_samples:
        continue
      sound = sound[:num_samples - start]
      gain = 10.0 ** ((event['level'] + level_db + rng.normal(0, 2.0)) / 20.0)
      events[start:start + len(sound)] += gain * sound / (np.sqrt(np.mean(sound ** 2)) + 1e-12)
  snr = 10.0 ** ((preset.event_snr_db + rng.normal(0, 2.0)) / 20.0)
  clip = background + snr * events * 0.5
  level = REFERENCE_RMS * 10.0 ** (rng.uniform(-6.0, 6.0) / 20.0)
  return clip * level / (np.sqrt(np.mean(clip ** 2)) + 1e-12)


def device_response_db(device: str, preset: SyntheticPreset, freqs: np.ndarray) -> np.ndarray:
  """Magnitude response (dB) of a device's chain: smooth random EQ, band limits and gain."""
  chain = DEVICE_CHAINS[device]
  rng = rng_for(preset, 'device', device)
  position = np.log2(freqs / 20.0) / np.log2(24000.0 / 20.0)
  ripple = sum(rng.normal(0, 1.0) * np.cos(np.pi * k * position + rng.uniform(0, 2 * np.pi))
               for k in range(1, 5))
  response = chain['eq_db'] * ripple / 2.0 + chain['gain_db']
  response = response - 10.0 * np.log10(1.0 + (chain['highpass'] / freqs) ** 4)
  if chain['lowpass'] is not None:
    response = response - 10.0 * np.log10(1.0 + (freqs / chain['lowpass']) ** 8)
  return response


def record(clip: np.ndarray, spec: ClipSpec, preset: SyntheticPreset) -> np.ndarray:
  """`clip` as recorded by `spec.device`: response, noise floor, soft clipping."""
  chain = DEVICE_CHAINS[spec.device]
  sr = preset.sample_rate
  freqs = _frequencies(len(clip), sr)
  spectrum = np.fft.rfft(clip) * 10.0 ** (device_response_db(spec.device, preset, freqs) / 20.0)
  recorded = np.fft.irfft(spectrum, n=len(clip))
  rng = rng_for(preset, 'noise', spec.segment_id, spec.device)
  floor_tilt = rng_for(preset, 'device', spec.device, 'floor').uniform(-3.0, 0.0)
  floor = _shaped_noise(rng, len(clip), sr, floor_tilt * np.log2(freqs / 1000.0))
  recorded = recorded + 10.0 ** (chain['noise_db'] / 20.0) * floor
  if chain['drive'] > 0:
    drive = 1.0 + 8.0 * chain['drive']
    recorded = np.tanh(drive * recorded) / drive
  return recorded


def render_clip(spec: ClipSpec, preset_name: str) -> np.ndarray:
  """The float32 waveform of `spec` at the preset's sample rate (deterministic)."""
  preset = get_preset(preset_name)
  if spec.scene not in SCENE_MODELS or spec.device not in DEVICE_CHAINS:
    raise ValueError(f'{spec.filename}: unknown scene {spec.scene!r} or device {spec.device!r}; '
                     f'scenes are {SCENES}, devices {DEVICES}.')
  return record(render_scene(spec, preset), spec, preset).astype(np.float32)
