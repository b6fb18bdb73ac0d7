"""WAV reading (stdlib ``wave``) and the MLPerf Tiny keyword-spotting MFCC front end, in numpy.

The features follow MLPerf Tiny's ``get_dataset.py`` (mfcc mode), which is built on ``tf.signal``: the int16
clip divided by its maximum sample, zero-padded or cut to 1 s at 16 kHz; 30 ms Hann-windowed frames every
20 ms (49 frames, FFT length 512); magnitude spectrum; 40 mel bands from 20 to 4,000 Hz
(``linear_to_mel_weight_matrix``); ``log(mel + 1e-6)``; DCT-II scaled by ``1/sqrt(2·40)`` (as
``mfccs_from_log_mel_spectrograms``); the first 10 coefficients. Output: 49×10 per clip.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import wave
from pathlib import Path

import numpy as np

from tinynas.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class MFCCSettings:
    sample_rate: int = 16_000
    clip_samples: int = 16_000  # 1 s
    frame_length: int = 480  # 30 ms
    frame_step: int = 320  # 20 ms
    num_mel_bins: int = 40
    lower_hertz: float = 20.0
    upper_hertz: float = 4000.0
    num_coefficients: int = 10

    @property
    def fft_length(self) -> int:
        return 1 << (self.frame_length - 1).bit_length()  # tf.signal.stft's default: the next power of two

    @property
    def num_frames(self) -> int:
        return 1 + (self.clip_samples - self.frame_length) // self.frame_step


MLPERF = MFCCSettings()


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(int16 samples, sample rate) of a mono 16-bit PCM WAV; a ConfigError naming the file otherwise."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise ConfigError(f"{path} has {w.getnchannels()} channel(s) of {8 * w.getsampwidth()}-bit samples; "
                                  "expected mono 16-bit PCM")
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()
    except (wave.Error, EOFError) as e:
        raise ConfigError(f"{path} is not a readable PCM WAV file ({e})") from None


def normalize_clip(samples: np.ndarray, clip_samples: int = MLPERF.clip_samples) -> np.ndarray:
    """MLPerf Tiny's scaling: the clip over its largest sample (full scale when that is ≤ 0), padded with zeros
    or cut to ``clip_samples``."""
    x = np.asarray(samples, dtype=np.float32)
    peak = float(x.max()) if len(x) else 0.0
    x = x / (peak if peak > 0 else 32768.0)
    out = np.zeros(clip_samples, np.float32)
    out[:min(len(x), clip_samples)] = x[:clip_samples]
    return out


def _hertz_to_mel(f: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(f / 700.0)


@functools.lru_cache(maxsize=4)
def mel_matrix(s: MFCCSettings = MLPERF) -> np.ndarray:
    """(fft_length/2 + 1) × num_mel_bins triangular weights, as ``tf.signal.linear_to_mel_weight_matrix``."""
    bins = s.fft_length // 2 + 1
    freqs = _hertz_to_mel(np.linspace(0.0, s.sample_rate / 2.0, bins)[1:])[:, None]  # the DC bin stays zero
    edges = np.linspace(_hertz_to_mel(s.lower_hertz), _hertz_to_mel(s.upper_hertz), s.num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((freqs - lower) / (center - lower), (upper - freqs) / (upper - center)))
    return np.pad(weights, ((1, 0), (0, 0)))


@functools.lru_cache(maxsize=4)
def dct_matrix(s: MFCCSettings = MLPERF) -> np.ndarray:
    """num_mel_bins × num_coefficients DCT-II, scaled like ``tf.signal.mfccs_from_log_mel_spectrograms``."""
    n = np.arange(s.num_mel_bins)[:, None]
    k = np.arange(s.num_coefficients)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * s.num_mel_bins)) / np.sqrt(2.0 * s.num_mel_bins)


def mfcc(clips: np.ndarray, s: MFCCSettings = MLPERF, chunk: int = 256) -> np.ndarray:
    """float32 num_frames × num_coefficients MFCCs of each normalised clip in ``clips`` (N × clip_samples)."""
    from scipy import fft  # single-precision, multi-threaded FFT (numpy's is float64 only)

    clips = np.atleast_2d(np.asarray(clips, dtype=np.float32))
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(s.frame_length) / s.frame_length)).astype(np.float32)
    frame_idx = (np.arange(s.num_frames) * s.frame_step)[:, None] + np.arange(s.frame_length)
    mel, dct = mel_matrix(s).astype(np.float32), dct_matrix(s).astype(np.float32)  # periodic Hann window above
    out = np.empty((len(clips), s.num_frames, s.num_coefficients), np.float32)
    for i in range(0, len(clips), chunk):
        frames = clips[i:i + chunk, frame_idx] * window  # chunk × frames × frame_length
        spectrum = np.abs(fft.rfft(frames, n=s.fft_length, workers=os.cpu_count() or 1))
        out[i:i + chunk] = np.log(spectrum @ mel + 1e-6) @ dct
    return out
