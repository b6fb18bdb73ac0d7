"""What a dataset loader returns: labels and split marks first, decoding on demand (so caps skip unread files)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from tinynas.errors import ConfigError

TRAIN, VAL, TEST, UNASSIGNED = 0, 1, 2, -1


@dataclasses.dataclass(frozen=True)
class Source:
    """One dataset on disk, not yet decoded.

    ``decode(indices)`` returns those samples as an N×C×H×W array: ``uint8`` images (0–255) or ``float32``
    features. ``split`` marks each sample ``TRAIN``/``VAL``/``TEST`` where the dataset fixes it, ``UNASSIGNED``
    where the loader carves it by ``val_fraction``/``test_fraction``; ``None`` means all unassigned.
    ``fingerprint`` names the files and decoding options (empty: never cache). ``fixed_size``: features
    whose height × width must not be resized (MFCC frames, time-series windows).
    """

    y: np.ndarray
    classes: tuple[str, ...]
    decode: Callable[[np.ndarray], np.ndarray]
    split: np.ndarray | None = None
    fingerprint: str = ""
    fixed_size: bool = False
    # What decode already multiplied the stored values by (0-255 pixels / 255: 1/255); None: uint8 images,
    # which normalisation scales by 1/255, or features used as they are (1).
    raw_scale: float | None = None


Loader = Callable[[Mapping[str, Any]], Source]


def root_dir(cfg: Mapping[str, Any], expected: str, get: str, file_ok: bool = False) -> Path:
    """``cfg.root`` as a Path, or a ConfigError naming the folder, what belongs inside and where to get it."""
    name, root = cfg["name"], cfg.get("root")
    if not root:
        raise ConfigError(f"dataset {name}: no root given; set dataset.root=<folder holding {expected}>. {get}")
    path = Path(os.path.expanduser(str(root)))
    if path.is_file() and not file_ok:
        raise ConfigError(f"dataset {name}: root={path} is a file; expected a folder holding {expected}. {get}")
    if not (path.is_dir() or (file_ok and path.is_file())):
        raise ConfigError(f"dataset {name}: root={path} does not exist; expected a folder holding {expected}. {get}")
    return path


def image_size(cfg: Mapping[str, Any], default: int) -> tuple[int, int]:
    """``image_size`` as (height, width): an int for square images or a [height, width] pair."""
    size = cfg.get("image_size", default) or default
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ConfigError(f"dataset {cfg['name']}: image_size={size!r} must be a positive int or [height, width]")
    return pair


def channels(cfg: Mapping[str, Any], default: int = 3) -> int:
    c = cfg.get("in_channels", default) or default
    if c not in (1, 3):
        raise ConfigError(f"dataset {cfg['name']}: in_channels={c} is not allowed for images; use 1 (grey) or 3 (RGB)")
    return c


def files_fingerprint(*parts: Any, files: Iterable[Path] = ()) -> str:
    """A hash of ``parts`` and each file's path, size and modification time: changes when the data or its
    decoding options do (same-size rewrites included, e.g. a regenerated set of 1 s clips)."""
    h = hashlib.sha1(repr(parts).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def labels_of(names: list[str], classes: tuple[str, ...]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[n] for n in names], dtype=np.int64)
