"""Google Speech Commands v2 as 12-class keyword spotting (MLPerf Tiny KWS): MFCC features N×1×49×10.

Layout: ``root/<word>/<speaker>_nohash_<n>.wav`` (16 kHz mono int16), ``root/_background_noise_/*.wav``,
``root/validation_list.txt`` and ``root/testing_list.txt`` (``<word>/<file>`` lines; everything else trains).
Without both lists, files go to a split by the hash of their speaker, as TensorFlow's ``input_data.which_set``
(``validation_percentage`` / ``testing_percentage``, 10 each).

Classes: the ``words`` (sorted, as MLPerf Tiny's label order), then ``_silence_`` and ``_unknown_``. As in
TensorFlow's ``input_data.py``, each split gets ``silence_percentage`` % (of its keyword clips) silence clips,
1 s cut from the background-noise files at seeded offsets, and ``unknown_percentage`` % clips of the other
words, drawn by a seeded shuffle.
"""

from __future__ import annotations

import hashlib
import math
import re
import wave
from pathlib import Path

import numpy as np

from tinynas.datasets.audio import MLPERF, mfcc, normalize_clip, read_wav
from tinynas.datasets.base import TEST, TRAIN, VAL, Source, files_fingerprint, root_dir
from tinynas.errors import ConfigError

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN, NOISE_DIR = "_silence_", "_unknown_", "_background_noise_"
GET = ("Download http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz yourself and extract it into "
       "the root, or generate a keyword set in that layout.")
_MAX_NUM_WAVS_PER_CLASS = 2**27 - 1


def which_set(file_name: str, validation_percentage: float, testing_percentage: float) -> int:
    """TensorFlow ``input_data.which_set``: a stable split from the hash of the speaker part of the name."""
    speaker = re.sub(r"_nohash_.*$", "", Path(file_name).name)
    h = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    percentage = (h % (_MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return VAL
    return TEST if percentage < validation_percentage + testing_percentage else TRAIN


def _list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def _noise_lengths(root: Path, name: str) -> dict[Path, int]:
    """Each background-noise WAV of at least 1 s and its length in samples (from the header: read on use)."""
    folder = root / NOISE_DIR
    lengths = {}
    for path in sorted(folder.glob("*.wav")) if folder.is_dir() else []:
        try:
            with wave.open(str(path), "rb") as w:
                lengths[path] = w.getnframes()
        except (wave.Error, EOFError) as e:
            raise ConfigError(f"dataset {name}: {path} is not a readable PCM WAV file ({e})") from None
    lengths = {p: n for p, n in lengths.items() if n >= MLPERF.clip_samples}
    if not lengths:
        raise ConfigError(f"dataset {name}: {folder} holds no WAV of at least 1 s; the {SILENCE} class is cut from "
                          f"it (or set dataset.silence_percentage=0). {GET}")
    return lengths


def load(cfg) -> Source:
    name = cfg["name"]
    root = root_dir(cfg, f"one folder of 16 kHz WAVs per word, {NOISE_DIR}/, validation_list.txt and "
                    "testing_list.txt", GET)
    words = tuple(cfg.get("words") or WORDS)
    if not all(isinstance(w, str) and w for w in words):
        raise ConfigError(f"dataset {name}: words={list(words)} must all be folder names; in YAML quote yes, no, "
                          "on and off (bare, they read as true / false)")
    silence_pct, unknown_pct = float(cfg.get("silence_percentage", 10)), float(cfg.get("unknown_percentage", 10))
    rng = np.random.default_rng([int(cfg.get("split_seed", 0)), 7])
    lists = [root / "validation_list.txt", root / "testing_list.txt"]
    val_list, test_list = (_list(p) for p in lists) if all(p.is_file() for p in lists) else (None, None)
    vp, tp = float(cfg.get("validation_percentage", 10)), float(cfg.get("testing_percentage", 10))

    keyword, unknown = [], []  # (relative path, class, split)
    for folder in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))):
        for wav in sorted(folder.glob("*.wav")):
            rel = f"{folder.name}/{wav.name}"
            split = (which_set(rel, vp, tp) if val_list is None else
                     VAL if rel in val_list else TEST if rel in test_list else TRAIN)
            (keyword if folder.name in words else unknown).append((rel, folder.name, split))
    missing = [w for w in words if not any(item[1] == w for item in keyword)]
    if missing:
        raise ConfigError(f"dataset {name}: {root} has no WAVs for the words {missing}; expected "
                          f"root/<word>/*.wav for each of {list(words)}. {GET}")

    noise = list(_noise_lengths(root, name).items()) if silence_pct > 0 else []
    items = list(keyword)
    for split in (TRAIN, VAL, TEST):
        n = sum(1 for item in keyword if item[2] == split)
        for _ in range(math.ceil(n * silence_pct / 100)):
            path, length = noise[int(rng.integers(len(noise)))]
            start = int(rng.integers(length - MLPERF.clip_samples + 1))
            items.append((f"{NOISE_DIR}/{path.name}@{start}", SILENCE, split))
        pool = [item for item in unknown if item[2] == split]
        take = min(len(pool), math.ceil(n * unknown_pct / 100))
        items += [pool[i] for i in sorted(rng.permutation(len(pool))[:take])]

    classes = (*sorted(words), SILENCE, UNKNOWN)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[cls if cls in index else UNKNOWN] for _, cls, _ in items], np.int64)

    def decode(idx: np.ndarray) -> np.ndarray:
        clips = np.empty((len(idx), MLPERF.clip_samples), np.float32)
        noises: dict[str, np.ndarray] = {}
        for row, i in enumerate(idx):
            rel, cls, _ = items[i]
            if cls == SILENCE:
                rel, start = rel.rsplit("@", 1)
                if rel not in noises:
                    noises[rel] = read_wav(root / rel)[0]
                samples = noises[rel][int(start):int(start) + MLPERF.clip_samples]
            else:
                samples, rate = read_wav(root / rel)
                if rate != MLPERF.sample_rate:
                    raise ConfigError(f"dataset {name}: {root / rel} is sampled at {rate} Hz; expected "
                                      f"{MLPERF.sample_rate} Hz")
            clips[row] = normalize_clip(samples)
        return mfcc(clips)[:, None]

    wavs = [root / rel for rel, cls, _ in items if cls != SILENCE] + [path for path, _ in noise]
    fingerprint = files_fingerprint(name, MLPERF, items, files=wavs)
    return Source(y, classes, decode, np.array([s for _, _, s in items], np.int8), fingerprint, fixed_size=True)
