"""A spoken-keyword set synthesised locally with espeak-ng, written in the Google Speech Commands v2 layout.

No download: every clip is ``espeak-ng`` speaking a word with one of its English voices and voice variants (the
"speaker"), at a random speed, pitch and gain, resampled to 16 kHz mono int16, placed at a random offset in one
second and mixed with background noise at a random SNR. The layout is the real set's::

    root/<word>/<speaker>_nohash_<n>.wav      16 kHz, mono, int16, exactly 1 s
    root/_background_noise_/*.wav             white, pink, brown noise and a mains hum (generated from the seed)
    root/validation_list.txt                  <word>/<file> lines; the split is by speaker, as in the real set,
    root/testing_list.txt                     so validation and test voices are never heard in training

plus a few other words for the ``_unknown_`` class. The result is deterministic for its settings (seed included)
and idempotent: ``root/.espeak_keywords.json`` records the settings, and a second call with the same ones returns
at once. espeak-ng: ``apt-get install espeak-ng`` (Debian/Ubuntu), ``brew install espeak-ng`` (macOS), or
https://github.com/espeak-ng/espeak-ng/releases (Windows installer).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from tinynas.errors import ConfigError

SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE  # 1 s
MARKER = ".espeak_keywords.json"
FORMAT_VERSION = 1  # bump when the synthesis changes, so cached sets are regenerated

# The ten Speech Commands v2 keywords of the 12-class KWS task (MLPerf Tiny), and some of its other words.
DEFAULT_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
DEFAULT_UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow")
# espeak-ng's own English voices (no MBROLA voices: they need the separate mbrola program) and its voice variants.
DEFAULT_VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
                  "en-us-nyc")
DEFAULT_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
NOISES = ("white_noise", "pink_noise", "brown_noise", "mains_hum")

INSTALL_HINT = ("espeak-ng is needed to synthesise the keyword set: `apt-get install espeak-ng` (Debian/Ubuntu), "
                "`brew install espeak-ng` (macOS), or the installer from "
                "https://github.com/espeak-ng/espeak-ng/releases (Windows); or set its path in $ESPEAK_NG")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that determines the generated files (recorded in the marker file)."""

    words: tuple[str, ...] = DEFAULT_WORDS
    n_per_word: int = 100
    seed: int = 0
    unknown_words: tuple[str, ...] = DEFAULT_UNKNOWN_WORDS
    n_per_unknown_word: int = 20
    voices: tuple[str, ...] = DEFAULT_VOICES
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    speed_wpm: tuple[int, int] = (120, 220)   # espeak-ng -s, words per minute (its default is 175)
    pitch: tuple[int, int] = (20, 80)         # espeak-ng -p, 0..99 (default 50)
    peak_dbfs: tuple[float, float] = (-20.0, -1.0)
    snr_db: tuple[float, float] = (5.0, 30.0)
    noise_probability: float = 0.8
    validation_fraction: float = 0.1
    testing_fraction: float = 0.1
    noise_seconds: int = 30

    def check(self) -> None:
        words = list(self.words) + list(self.unknown_words)
        if not all(isinstance(w, str) for w in words):
            raise ConfigError(f"espeak_keywords: words {words} must all be strings (in YAML, quote \"yes\", \"no\", "
                              "\"on\" and \"off\": bare they are booleans)")
        if not self.words:
            raise ConfigError("espeak_keywords: words is empty; give at least one keyword")
        bad = [w for w in words if not w or not w.replace("_", "").replace("-", "").isalnum() or w.startswith("_")]
        if bad:
            raise ConfigError(f"espeak_keywords: words {bad} are not allowed; use letters, digits, '-' and '_' "
                              "(not leading '_', which marks _background_noise_ / _unknown_)")
        if len(set(words)) != len(words):
            raise ConfigError(f"espeak_keywords: words and unknown_words repeat a word: {words}")
        if self.n_per_word < 1 or self.n_per_unknown_word < 0:
            raise ConfigError(f"espeak_keywords: n_per_word={self.n_per_word} must be >= 1 and "
                              f"n_per_unknown_word={self.n_per_unknown_word} >= 0")
        vf, tf = self.validation_fraction, self.testing_fraction
        n_speakers = len(self.voices) * len(self.variants)
        if not (0 < vf < 1 and 0 < tf < 1 and vf + tf < 1):
            raise ConfigError(f"espeak_keywords: validation_fraction={vf} and testing_fraction={tf} must be in "
                              "(0, 1) and sum below 1")
        if n_speakers < 3:
            raise ConfigError(f"espeak_keywords: {n_speakers} speakers (voices x variants); at least 3 are needed "
                              "for disjoint train / validation / test speakers")
        for name, (lo, hi) in (("speed_wpm", self.speed_wpm), ("pitch", self.pitch), ("peak_dbfs", self.peak_dbfs),
                               ("snr_db", self.snr_db)):
            if lo > hi:
                raise ConfigError(f"espeak_keywords: {name}=[{lo}, {hi}] must be [low, high]")
        if not (80 <= self.speed_wpm[0] and self.speed_wpm[1] <= 450):
            raise ConfigError(f"espeak_keywords: speed_wpm={list(self.speed_wpm)} must lie in [80, 450]")
        if not (0 <= self.pitch[0] and self.pitch[1] <= 99):
            raise ConfigError(f"espeak_keywords: pitch={list(self.pitch)} must lie in [0, 99]")
        if self.peak_dbfs[1] > 0:
            raise ConfigError(f"espeak_keywords: peak_dbfs={list(self.peak_dbfs)} must be <= 0 dBFS")
        if not 0 <= self.noise_probability <= 1:
            raise ConfigError(f"espeak_keywords: noise_probability={self.noise_probability} must be in [0, 1]")
        if self.noise_seconds < 1:
            raise ConfigError(f"espeak_keywords: noise_seconds={self.noise_seconds} must be >= 1")

    def to_json(self) -> dict:
        return {"format_version": FORMAT_VERSION, **{k: _jsonable(v) for k, v in dataclasses.asdict(self).items()}}


def _jsonable(v):
    return [_jsonable(x) for x in v] if isinstance(v, (tuple, list)) else v


@dataclasses.dataclass(frozen=True)
class _Clip:
    word: str
    speaker: str  # espeak-ng -v argument, e.g. "en-us+f3"
    index: int  # the n in <speaker>_nohash_<n>.wav
    speed: int
    pitch: int
    peak_dbfs: float
    offset_fraction: float
    noise: int  # index into NOISES, -1 for a clean clip
    noise_start_fraction: float
    snr_db: float

    @property
    def relpath(self) -> str:
        return f"{self.word}/{self.speaker}_nohash_{self.index}.wav"


def espeak_binary() -> str:
    """The espeak-ng executable ($ESPEAK_NG, else on PATH); ConfigError saying how to install it when missing."""
    given = os.environ.get("ESPEAK_NG")
    if given:
        exe = shutil.which(given)
        if not exe:
            raise ConfigError(f"ESPEAK_NG={given!r} is not an executable file. {INSTALL_HINT}")
        return exe
    exe = shutil.which("espeak-ng")
    if not exe:
        raise ConfigError(f"espeak-ng is not on PATH. {INSTALL_HINT}")
    return exe


def speakers(settings: Settings) -> list[str]:
    """Every voice × variant as espeak-ng's -v argument, e.g. "en-us+f3"; it is also the file's speaker id."""
    return [f"{v}+{var}" if var else v for v in settings.voices for var in settings.variants]


def speaker_split(settings: Settings) -> dict[str, str]:
    """Speaker → "training" | "validation" | "testing": a seeded shuffle cut at the two fractions."""
    names = speakers(settings)
    order = np.random.default_rng([settings.seed, 1]).permutation(len(names))
    n_val = max(1, int(round(len(names) * settings.validation_fraction)))
    n_test = max(1, int(round(len(names) * settings.testing_fraction)))
    split = {}
    for rank, i in enumerate(order):
        split[names[i]] = "testing" if rank < n_test else "validation" if rank < n_test + n_val else "training"
    return split


def plan(settings: Settings) -> list[_Clip]:
    """Every clip to synthesise, drawn from the seed alone (so threads cannot change the result)."""
    rng = np.random.default_rng([settings.seed, 0])
    spk = speakers(settings)
    clips: list[_Clip] = []
    counts: dict[tuple[str, str], int] = {}
    jobs = [(w, settings.n_per_word) for w in settings.words]
    jobs += [(w, settings.n_per_unknown_word) for w in settings.unknown_words]
    for word, n in jobs:
        # Cycle through all speakers in a fresh random order, so every speaker says every word about equally often.
        order = np.concatenate([rng.permutation(len(spk)) for _ in range(-(-n // len(spk)))])[:n]
        for i in order:
            speaker = spk[int(i)]
            k = counts.get((word, speaker), 0)
            counts[(word, speaker)] = k + 1
            noisy = rng.random() < settings.noise_probability
            clips.append(_Clip(
                word=word, speaker=speaker, index=k,
                speed=int(rng.integers(settings.speed_wpm[0], settings.speed_wpm[1] + 1)),
                pitch=int(rng.integers(settings.pitch[0], settings.pitch[1] + 1)),
                peak_dbfs=float(rng.uniform(*settings.peak_dbfs)),
                offset_fraction=float(rng.random()),
                noise=int(rng.integers(len(NOISES))) if noisy else -1,
                noise_start_fraction=float(rng.random()),
                snr_db=float(rng.uniform(*settings.snr_db))))
    return clips


def synthesize(word: str, voice: str, speed: int, pitch: int, exe: str | None = None) -> np.ndarray:
    """espeak-ng speaking ``word``: float32 samples in [-1, 1] at 16 kHz, leading and trailing silence trimmed."""
    from scipy.signal import resample_poly

    exe = exe or espeak_binary()
    p = subprocess.run([exe, "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch), word],
                       capture_output=True, timeout=60)
    raw = p.stdout
    at = raw.find(b"data")
    if p.returncode != 0 or raw[:4] != b"RIFF" or at < 0:
        raise RuntimeError(f"espeak-ng -v {voice} {word!r} failed (exit {p.returncode}): "
                           f"{p.stderr.decode(errors='replace').strip()[:300]}")
    rate = int.from_bytes(raw[24:28], "little")
    pcm = raw[at + 8:]
    x = np.frombuffer(pcm[:len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    loud = np.flatnonzero(np.abs(x) > 0.02 * max(float(np.abs(x).max()), 1e-9))
    if len(loud) == 0:
        raise RuntimeError(f"espeak-ng -v {voice} {word!r} produced silence")
    x = x[loud[0]:loud[-1] + 1]
    g = np.gcd(rate, SAMPLE_RATE)
    return resample_poly(x, SAMPLE_RATE // g, rate // g).astype(np.float32)


def make_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of background noise at 16 kHz, peak-normalised to 0.5: white, pink (1/f), brown (1/f²) or
    a 50 Hz mains hum with harmonics over faint white noise."""
    if kind == "white_noise":
        x = rng.standard_normal(n)
    elif kind in ("pink_noise", "brown_noise"):
        f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        f[0] = f[1]
        spectrum = np.fft.rfft(rng.standard_normal(n)) / (np.sqrt(f) if kind == "pink_noise" else f)
        x = np.fft.irfft(spectrum, n)
    elif kind == "mains_hum":
        t = np.arange(n) / SAMPLE_RATE
        x = sum(a * np.sin(2 * np.pi * h * 50 * t + rng.uniform(0, 2 * np.pi))
                for h, a in ((1, 1.0), (2, 0.5), (3, 0.35), (5, 0.2), (7, 0.1)))
        x = x + 0.05 * rng.standard_normal(n)
    else:
        raise ConfigError(f"unknown noise {kind!r}; available: {', '.join(NOISES)}")
    x = x - x.mean()
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def render(clip: _Clip, speech: np.ndarray, noises: Sequence[np.ndarray]) -> np.ndarray:
    """One 1 s int16 clip: ``speech`` scaled to its peak, placed at its offset (cropped if longer), plus noise."""
    speech = speech * (10 ** (clip.peak_dbfs / 20) / max(float(np.abs(speech).max()), 1e-9))
    out = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    if len(speech) >= CLIP_SAMPLES:
        start = int(clip.offset_fraction * (len(speech) - CLIP_SAMPLES))
        out[:] = speech[start:start + CLIP_SAMPLES]
    else:
        start = int(clip.offset_fraction * (CLIP_SAMPLES - len(speech)))
        out[start:start + len(speech)] = speech
    if clip.noise >= 0:
        noise = noises[clip.noise]
        at = int(clip.noise_start_fraction * (len(noise) - CLIP_SAMPLES))
        seg = noise[at:at + CLIP_SAMPLES]
        p_speech = float(np.mean(speech ** 2))
        p_noise = max(float(np.mean(seg ** 2)), 1e-12)
        out += seg * np.sqrt(p_speech / (p_noise * 10 ** (clip.snr_db / 10)))
    return to_int16(out)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray) -> None:
    """16 kHz mono int16 PCM WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def read_marker(root: Path) -> dict | None:
    try:
        return json.loads((Path(root) / MARKER).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def generate_keywords(root, words: Sequence[str] = DEFAULT_WORDS, n_per_word: int = 100, seed: int = 0, *,
                      workers: int = 2, **settings) -> Path:
    """Synthesise the keyword set into ``root`` (Speech Commands v2 layout) unless it is already there with the same
    settings; returns ``root``. ``settings`` are the other fields of :class:`Settings` (unknown_words,
    n_per_unknown_word, voices, variants, speed_wpm, pitch, peak_dbfs, snr_db, noise_probability,
    validation_fraction, testing_fraction, noise_seconds). A ``root`` that holds other files but no marker is
    refused rather than overwritten. ``workers`` threads run espeak-ng side by side (the result does not depend on
    it)."""
    fields = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        allowed = sorted(fields - {"words", "n_per_word", "seed"})
        raise ConfigError(f"espeak_keywords: unknown settings {unknown}; allowed: {allowed} and workers")
    s = Settings(words=tuple(words), n_per_word=int(n_per_word), seed=int(seed),
                 **{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in settings.items()})
    s.check()
    root = Path(root)
    wanted = s.to_json()
    if read_marker(root) == wanted:
        return root
    if root.exists() and any(root.iterdir()) and read_marker(root) is None:
        raise ConfigError(f"espeak_keywords: {root} is not empty and was not generated here (no {MARKER}); "
                          "give an empty or new directory")
    exe = espeak_binary()
    tmp = root.with_name(f"{root.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_set(tmp, s, exe, workers)
        if read_marker(root) == wanted:  # another process finished first
            return root
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _write_set(out: Path, s: Settings, exe: str, workers: int) -> None:
    clips = plan(s)
    for d in {c.word for c in clips} | {"_background_noise_"}:
        (out / d).mkdir(parents=True, exist_ok=True)
    noise_rng = np.random.default_rng([s.seed, 2])
    noises = [make_noise(kind, s.noise_seconds * SAMPLE_RATE, noise_rng) for kind in NOISES]
    for kind, x in zip(NOISES, noises):
        write_wav(out / "_background_noise_" / f"{kind}.wav", to_int16(x))

    def one(clip: _Clip) -> None:
        write_wav(out / clip.relpath, render(clip, synthesize(clip.word, clip.speaker, clip.speed, clip.pitch, exe),
                                              noises))

    with ThreadPoolExecutor(max(1, int(workers))) as pool:
        list(pool.map(one, clips))
    split = speaker_split(s)
    for part in ("validation", "testing"):
        lines = sorted(c.relpath for c in clips if split[c.speaker] == part)
        (out / f"{part}_list.txt").write_text("".join(line + "\n" for line in lines))
    (out / MARKER).write_text(json.dumps(s.to_json(), indent=1) + "\n")


def ensure_generated(cfg) -> Path:
    """Generate the set a dataset config node describes, when it asks for it: ``cfg.generate`` is a mapping of
    :func:`generate_keywords` arguments (words, n_per_word, seed, ...) or null/false for none; ``cfg.root`` is where.
    Returns the root."""
    root = cfg.get("root")
    if not root:
        raise ConfigError("espeak_keywords: dataset.root is not set; give the directory to generate into")
    gen = cfg.get("generate")
    if gen in (None, False):
        return Path(root)
    if gen is True:
        gen = {}
    if not isinstance(gen, dict):
        gen = dict(gen)
    return generate_keywords(root, **gen)


def load(cfg):
    """The ``espeak_keywords`` dataset loader: generate the set into ``cfg.root`` when missing or stale (see
    :func:`ensure_generated`), then read it as Speech Commands (12-class KWS, MFCC 49×10)."""
    from tinynas.datasets import speech_commands

    ensure_generated(cfg)
    return speech_commands.load(cfg)
