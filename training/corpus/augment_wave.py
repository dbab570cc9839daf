"""Acoustic-domain renditions of a clip's waveform for `training.prepare`: a room, a background, a
microphone, a codec, and small pitch and speed changes.

The corpus is mostly clean studio and game audio, while embeddings are asked of phone recordings,
field takes and compressed streams; a rendition puts a clip in such a setting and keeps its tags, so
the model is trained to map both to the same place. Each rendition draws its own chain from the
enabled stages, from a generator seeded by (seed, clip, rendition), so a prepared folder is
reproducible whatever the clip order or the number of workers. The waveform in and out is mono
float32 at the front end's rate; cutting patches is left to the front end (training/corpus/prepare.py).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np

STAGES = ("pitch_speed", "room", "background", "mic", "codec")  # the order of a chain: source, space, device
# Tags of clips that can serve as a background: sound that fills a scene rather than an event in it
# (cleaned tag words, as training/corpus/tags.py writes them)
AMBIENCE_TAGS = frozenset("""ambience ambient atmosphere soundscape background roomtone hum rain raining
drizzle downpour storm thunderstorm wind windy breeze crowd chatter murmur audience traffic street city
town market restaurant cafe office water stream river creek brook waterfall ocean sea wave surf shore
beach forest jungle woodland nature outdoor night""".split()) | {"room tone"}
SPEECH_TAG = "speech"
MAX_REFLECTION_ORDER = 20
# libsndfile's compression level (1: fewest bits) per codec, drawn uniformly: on white noise at 22/24 kHz
# Vorbis gave 76-44 kbit/s over 0.3-1.0, Opus 110-20 kbit/s over 0.6-0.95 (7 at 1.0), at 16 and 24 kHz alike
CODEC_LEVELS = {"vorbis": (0.3, 1.0), "opus": (0.6, 0.95)}


@dataclasses.dataclass(frozen=True)
class WaveAugment:
    """Which stages a rendition may draw, and their ranges; all off by default."""

    room: bool = False
    background: bool = False
    mic: bool = False
    codec: bool = False
    pitch_speed: bool = False
    renditions: int = 0  # augmented renditions per training clip, besides the clean one
    seed: int = 0
    snr_db: tuple[float, float] = (0.0, 20.0)
    rt60_s: tuple[float, float] = (0.2, 0.8)  # beyond ~0.8 s the image-source RIR costs > 0.2 s a clip
    pitch_semitones: float = 1.0  # +- this much
    speed: tuple[float, float] = (0.92, 1.08)
    # clips carrying any of these tags get no rendition: renditions of every clip cost spoken digits
    # (fsdd) 1.9 points in one epoch while everyday sounds gained 3.4 (training/EXPERIMENTS.md)
    skip_tags: tuple[str, ...] = ()

    def enabled(self) -> tuple[str, ...]:
        return tuple(s for s in STAGES if getattr(self, s))

    def active(self) -> bool:
        return self.renditions > 0 and bool(self.enabled())

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def clip_rng(aug: WaveAugment, clip_id: str, rendition: int) -> np.random.Generator:
    """A generator for one rendition of one clip, independent of every other (clip order, workers)."""
    key = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "little")
    return np.random.default_rng([aug.seed, key, rendition])


def draw_chain(aug: WaveAugment, tags, rng: np.random.Generator) -> list[str]:
    """The stages of one rendition: each enabled stage with probability 1/2, at least one (so no
    rendition repeats the clean clip). Speech is never pitch- or speed-changed: a voice an octave or a
    tempo off is a different speaker or a different word rate, which the tags would not say. A clip
    with one of `aug.skip_tags` gets no stage."""
    if set(aug.skip_tags) & set(tags):
        return []
    allowed = [s for s in aug.enabled() if not (s == "pitch_speed" and SPEECH_TAG in tags)]
    if not allowed:
        return []
    chain = [s for s in allowed if rng.random() < 0.5]
    return chain or [allowed[rng.integers(len(allowed))]]


# --- the stages: y is mono float32 at rate fs; each returns the new signal and what it drew ---

def pitch_speed(y, fs, rng, aug: WaveAugment):
    import librosa  # phase vocoder: pitch and tempo apart (a plain resample would tie them)

    steps = float(rng.uniform(-aug.pitch_semitones, aug.pitch_semitones))
    rate = float(rng.uniform(*aug.speed))
    y = librosa.effects.pitch_shift(y, sr=fs, n_steps=steps, res_type="soxr_hq")
    return librosa.effects.time_stretch(y, rate=rate).astype(np.float32), {"semitones": steps, "speed": rate}


def room_impulse_response(fs, rng, aug: WaveAugment):
    """A shoebox room's impulse response (image sources, pyroomacoustics): random size, reverberation
    time (the wall absorption that gives it, by Sabine's formula) and source-microphone distance."""
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(2.5, 12.0), rng.uniform(2.5, 12.0), rng.uniform(2.3, 4.5)])
    rt60 = float(rng.uniform(*aug.rt60_s))
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    # Sabine asks up to ~100 reflection orders; past 20 a 7 x 12 m room with rt60 0.77 s took 1.4 s
    # instead of 0.03 s, and its measured decay was then 1.7 s, not 0.77 (0.73 s with 20 orders)
    max_order = min(max_order, MAX_REFLECTION_ORDER)
    room = pra.ShoeBox(dims, fs=fs, materials=pra.Material(absorption), max_order=max_order)
    mic = rng.uniform(0.5, dims - 0.5)
    direction = rng.normal(size=3)
    distance = float(rng.uniform(0.3, 5.0))
    # walk the source back towards the microphone until it is inside the room, 0.3 m off the walls
    source = mic + direction / np.linalg.norm(direction) * distance
    while np.any(source < 0.3) or np.any(source > dims - 0.3):
        distance *= 0.8
        source = mic + direction / np.linalg.norm(direction) * distance
    room.add_source(source)
    room.add_microphone(mic)
    room.compute_rir()
    h = np.asarray(room.rir[0][0], np.float64)
    return h, {"room_m": [round(float(d), 2) for d in dims], "rt60_s": rt60, "absorption": float(absorption),
               "distance_m": round(distance, 2), "max_order": int(max_order)}


def room(y, fs, rng, aug: WaveAugment):
    """The clip played in a room: convolved with its impulse response, the reverberant tail kept (the
    output is len(y) + len(h) - 1 long), at the clip's RMS level (a recordist sets the gain, so the
    distance should change the sound, not the level)."""
    from scipy.signal import fftconvolve

    h, drawn = room_impulse_response(fs, rng, aug)
    wet = fftconvolve(y.astype(np.float64), h)
    return _match_rms(wet, y), dict(drawn, rir_samples=len(h))


def coloured_noise(n, colour: str, rng) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2) noise of unit RMS: white noise shaped in frequency."""
    slope = {"white": 0.0, "pink": 0.5, "brown": 1.0}[colour]  # amplitude ~ f^-slope
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0  # no infinite DC gain
    noise = np.fft.irfft(spectrum / f ** slope, n)
    noise -= noise.mean()
    return noise / max(np.sqrt(np.mean(noise ** 2)), 1e-12)


def mix_at_snr(y, noise, snr_db: float) -> np.ndarray:
    """y plus noise scaled so that power(y) / power(noise) is snr_db (powers over the whole clip)."""
    if not np.any(noise):
        raise ValueError("silent noise has no level to scale to an SNR")
    gain = np.sqrt(np.mean(y.astype(np.float64) ** 2) / (np.mean(noise ** 2) * 10 ** (snr_db / 10)))
    return (y + gain * noise).astype(np.float32)


def background(y, fs, rng, aug: WaveAugment, ambience=None):
    """The clip over a background at a random SNR: a random stretch of an ambience clip (looped when
    shorter) from `ambience()` -> (name, waveform) or None, else coloured noise. A silent clip has no
    SNR and is left as it is."""
    snr = float(rng.uniform(*aug.snr_db))
    if not np.any(y):
        return y, {"skipped": "silent clip"}
    picked = ambience(rng) if ambience is not None else None
    noise, drawn = None, {}
    if picked is not None and np.any(picked[1]):
        name, amb = picked
        start = int(rng.integers(len(amb)))
        noise = np.resize(np.roll(amb.astype(np.float64), -start), len(y))
        drawn = {"ambience": name}
        if not np.any(noise):  # a silent stretch of an ambience (a short clip, a pause): it has no level to set
            noise, drawn = None, {"ambience_silent": name}
    if noise is None:
        colour = str(rng.choice(["white", "pink", "brown"]))
        noise, drawn = coloured_noise(len(y), colour, rng), dict(drawn, noise=colour)
    return mix_at_snr(y, noise, snr), dict(drawn, snr_db=snr)


def mic(y, fs, rng, aug: WaveAugment):
    """A cheap microphone or small speaker: each of an EQ tilt, a speaker's high-pass, a band limit
    and mild clipping with probability 1/2, at least one."""
    from scipy.signal import butter, firwin2, oaconvolve, sosfilt

    steps = [s for s in ("tilt", "highpass", "lowpass", "clip") if rng.random() < 0.5] or \
        [("tilt", "highpass", "lowpass", "clip")[rng.integers(4)]]
    drawn = {}
    out = y.astype(np.float64)
    nyquist = fs / 2
    if "tilt" in steps:  # a straight line in dB per octave about 1 kHz, as a linear-phase FIR
        slope = float(rng.uniform(-3.0, 3.0))
        freq = np.concatenate([[0.0], np.geomspace(50.0, nyquist, 24)])
        gain_db = slope * np.log2(np.maximum(freq, 50.0) / 1000.0)
        taps = firwin2(257, freq / nyquist, 10 ** (np.clip(gain_db, -18, 18) / 20))
        out = oaconvolve(out, taps, mode="same")  # 'same' of an odd symmetric FIR: no delay
        drawn["tilt_db_per_octave"] = slope
    if "highpass" in steps:  # a phone or laptop speaker hardly moves air below a few hundred Hz
        cut = float(rng.uniform(150.0, 600.0))
        out = sosfilt(butter(4, cut, "highpass", fs=fs, output="sos"), out)
        drawn["highpass_hz"] = cut
    if "lowpass" in steps:
        cut = float(rng.uniform(3400.0, 9000.0))  # from telephone band to a cheap lavalier
        out = sosfilt(butter(6, cut, "lowpass", fs=fs, output="sos"), out)
        drawn["lowpass_hz"] = cut
    if "clip" in steps:  # an overdriven input: the peak cut 1-6 dB
        peak = float(np.max(np.abs(out)))
        drive = float(rng.uniform(1.0, 6.0))
        out = np.clip(out, -peak * 10 ** (-drive / 20), peak * 10 ** (-drive / 20))
        drawn["clip_db"] = drive
    return out.astype(np.float32), drawn


def codec(y, fs, rng, aug: WaveAugment):
    """A lossy round trip through libsndfile: Ogg Vorbis at the clip's rate, or Opus (which only takes
    8/12/16/24/48 kHz) at 16 or 24 kHz, resampled there and back; the output keeps the input's length."""
    import soundfile as sf
    import soxr

    name = str(rng.choice(["vorbis", "opus"]))
    level = float(rng.uniform(*CODEC_LEVELS[name]))
    rate = fs if name == "vorbis" else int(rng.choice([16000, 24000]))
    x = y if rate == fs else soxr.resample(y, fs, rate, quality="HQ")
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    scale = 0.95 / peak if peak > 0.95 else 1.0  # the encoders clip at full scale
    buf = io.BytesIO()
    sf.write(buf, x * scale, rate, format="OGG", subtype=name.upper(), compression_level=level)
    size = buf.tell()
    buf.seek(0)
    z = sf.read(buf, dtype="float32")[0] / scale
    if rate != fs:
        z = soxr.resample(z, rate, fs, quality="HQ")
    z = np.pad(z[:len(y)], (0, max(0, len(y) - len(z))))
    return z.astype(np.float32), {"codec": name, "rate": rate, "compression_level": level,
                                  "kbps": round(8 * size / max(len(y) / fs, 1e-9) / 1000, 1)}


def ambience_picker(pool, tags, load):
    """`ambience(rng)` for `background`: a random clip of `pool` ((name, tags) pairs) whose tags do not
    overlap `tags` (rain under rain would add nothing the tags do not already say), its waveform from
    `load(name)`; None when there is none."""
    tags = set(tags)
    candidates = [name for name, amb_tags in pool if not tags & set(amb_tags)]

    def pick(rng):
        if not candidates:
            return None
        name = candidates[rng.integers(len(candidates))]
        return name, load(name)

    return pick


def _match_rms(x, ref) -> np.ndarray:
    rms_x, rms_ref = np.sqrt(np.mean(x ** 2)), np.sqrt(np.mean(ref.astype(np.float64) ** 2))
    return (x * (rms_ref / rms_x if rms_x > 0 else 1.0)).astype(np.float32)


def render(y, fs, tags, aug: WaveAugment, clip_id: str, rendition: int, ambience=None):
    """One rendition of a clip: (waveform, the stages and what each drew), or (None, []) when no enabled
    stage applies to the clip (pitch and speed alone, for speech). `ambience(rng)` picks a background
    clip whose tags do not overlap this clip's."""
    rng = clip_rng(aug, clip_id, rendition)
    chain = draw_chain(aug, tags, rng)
    if not chain:
        return None, []
    y = np.asarray(y, np.float32)
    record = []
    for stage in chain:
        fn = {"pitch_speed": pitch_speed, "room": room, "background": background, "mic": mic, "codec": codec}[stage]
        y, drawn = fn(y, fs, rng, aug, ambience) if stage == "background" else fn(y, fs, rng, aug)
        record.append({stage: drawn})
    return y, record
