"""Writers of tiny datasets in the exact on-disk formats the loaders read (importable by other tests).

Every sample encodes its class in its content (image brightness, tone pitch, signal level), so a test can check
that the loader's labels belong to the samples it returns.
"""

from __future__ import annotations

import json
import pickle
import struct
import wave
from pathlib import Path
from typing import Sequence

import numpy as np

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 with ``bytes`` written as Python 2 ``str`` opcodes, as the real CIFAR-10 pickles are (so they
    load only with ``encoding="latin1"`` or ``"bytes"``)."""

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        short = n < 256
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if short else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


def _py2_pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def class_level(label: int) -> int:
    """The mean pixel value of an image of class ``label`` (0..9)."""
    return 20 + 23 * label


def cifar_rows(labels: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """uint8 rows of 3072 (R plane, G plane, B plane of 32×32), brightness by class, R brighter than B."""
    rows = np.empty((len(labels), 3, 1024), np.uint8)
    for i, label in enumerate(labels):
        base = class_level(label) + rng.integers(-3, 4, size=1024)
        rows[i] = np.stack([base + 6, base, base - 6]).clip(0, 255)
    return rows.reshape(len(labels), 3072)


def write_cifar10(root: Path, per_batch: int = 20, test: int = 30, seed: int = 0) -> Path:
    """``data_batch_1``…``5`` (``per_batch`` images each), ``test_batch`` and ``batches.meta`` like the real set."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", test)]:
        labels = [int(v) for v in rng.permutation(np.arange(n) % 10)]
        _py2_pickle(root / name, {b"batch_label": f"{name} of 5".encode(), b"labels": labels,
                                  b"data": cifar_rows(labels, rng),
                                  b"filenames": [f"img_{name}_{i}.png".encode() for i in range(n)]})
    _py2_pickle(root / "batches.meta", {b"num_cases_per_batch": per_batch, b"num_vis": 3072,
                                        b"label_names": [c.encode() for c in CIFAR_CLASSES]})
    return root


def write_image(path: Path, label: int, size: tuple[int, int] = (40, 30), rng: np.random.Generator | None = None,
                grey: bool = False) -> Path:
    """A ``size`` = (width, height) image of brightness ``class_level(label)`` (format from the suffix)."""
    from PIL import Image

    rng = rng or np.random.default_rng(label)
    w, h = size
    base = class_level(label) + rng.integers(-3, 4, size=(h, w))
    arr = base.clip(0, 255).astype(np.uint8) if grey else \
        np.stack([base + 6, base, base - 6], -1).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else \
        Image.fromarray(arr).save(path)
    return path


def write_image_folder(root: Path, classes: Sequence[str], per_class: int, suffixes=(".png", ".jpg", ".bmp"),
                       size=(40, 30), seed: int = 0) -> Path:
    """``root/<class>/<i><suffix>``; class ``k`` of ``classes`` has brightness ``class_level(k)``."""
    rng = np.random.default_rng(seed)
    for k, cls in enumerate(classes):
        for i in range(per_class):
            write_image(root / cls / f"{i:03d}{suffixes[i % len(suffixes)]}", k, size, rng)
    return root


def write_vww_coco(root: Path, labels: Sequence[int], seed: int = 0) -> Path:
    """COCO-style ``images/`` and ``annotations.json`` as build_visualwakewords_data.py writes them (label per
    image id, objects with bbox/area)."""
    rng = np.random.default_rng(seed)
    images, annotations = [], {}
    for i, label in enumerate(labels):
        name = f"COCO_train2014_{i + 1:012d}.jpg"
        write_image(root / "images" / name, label, (64, 48), rng)
        images.append({"file_name": name, "height": 48, "width": 64, "id": 1000 + i, "license": 1})
        objects = [{"area": 300.0, "bbox": [4, 4, 20, 15]}] if label else []
        annotations[str(1000 + i)] = {"objects": objects, "label": int(label)}
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                       "categories": {"1": {"id": 1, "name": "person"}}}))
    return root


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = 16_000) -> Path:
    """A mono 16-bit PCM WAV (the Speech Commands format) with the stdlib ``wave`` module."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return path


def tone(freq: float, seconds: float = 1.0, amplitude: int = 8000, seed: int = 0, rate: int = 16_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t) + rng.normal(0, 200, len(t))).astype(np.int16)


def write_speech_commands(root: Path, words: Sequence[str], others: Sequence[str] = ("cat", "dog"),
                          speakers: int = 5, validation: Sequence[int] = (3,), testing: Sequence[int] = (4,),
                          lists: bool = True) -> Path:
    """The v2 layout: ``root/<word>/<speaker>_nohash_0.wav`` (one 1 s tone per word and speaker, pitch by word),
    ``_background_noise_/*.wav`` and, when ``lists``, the validation / testing lists of the given speakers."""
    val_lines, test_lines = [], []
    for k, word in enumerate([*words, *others]):
        for s in range(speakers):
            name = f"{s:08x}_nohash_0.wav"
            write_wav(root / word / name, tone(300 + 150 * k, seconds=1.0 if s % 2 else 0.8, seed=s))
            (val_lines if s in validation else test_lines if s in testing else []).append(f"{word}/{name}")
    rng = np.random.default_rng(1)
    write_wav(root / "_background_noise_" / "white_noise.wav", rng.normal(0, 3000, 40_000).astype(np.int16))
    write_wav(root / "_background_noise_" / "short.wav", rng.normal(0, 3000, 8_000).astype(np.int16))
    if lists:
        (root / "validation_list.txt").write_text("\n".join(val_lines) + "\n")
        (root / "testing_list.txt").write_text("\n".join(test_lines) + "\n")
    (root / "LICENSE").write_text("fixture\n")
    return root


def write_accelerometer_csv(path: Path, segments: Sequence[tuple[str, int]], columns=("ax", "ay", "az"),
                            extra: dict[str, str] | None = None) -> Path:
    """One CSV with ``label`` + ``columns``; each segment (label, rows) has level = its label's index in the
    sorted label set on every axis (axis j adds j / 10), so a window's values identify its label."""
    names = sorted({lab for lab, _ in segments})
    lines = [",".join(["label", *columns, *(extra or {})])]
    for lab, rows in segments:
        level = names.index(lab)
        for r in range(rows):
            lines.append(",".join([lab, *(f"{level + j / 10 + r / 1000:.4f}" for j in range(len(columns))),
                                   *(extra or {}).values()]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
