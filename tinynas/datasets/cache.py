"""Decoded arrays cached as ``.npz`` so the second load of a big set skips decoding (JPEG, WAV → MFCC)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

DEFAULT_DIR = "~/.cache/tinynas"
log = logging.getLogger(__name__)


def cache_dir(setting) -> Path | None:
    """The cache folder: ``setting`` (the dataset's ``cache_dir``), else $TINYNAS_CACHE, else ~/.cache/tinynas;
    ``False`` turns caching off."""
    if setting is False:
        return None
    return Path(os.path.expanduser(str(setting or os.environ.get("TINYNAS_CACHE") or DEFAULT_DIR)))


def cached(folder: Path | None, name: str, fingerprint: str, indices: np.ndarray,
           decode: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``decode(indices)``, read from ``folder`` when an earlier call stored the same (data, indices)."""
    if folder is None or not fingerprint:
        return decode(indices)
    key = hashlib.sha1(fingerprint.encode() + np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()
    path = folder / f"{name}-{key[:20]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:  # a cache file is data: never unpickle it
                return f["x"]
        except (OSError, ValueError, KeyError, EOFError):
            pass  # a damaged cache file is rebuilt below
    x = decode(indices)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, x=x)
        os.replace(tmp, path)  # atomic: a concurrent reader sees no file or the whole file
    except OSError as e:  # a read-only or full disk costs the next load its speed, not this one its data
        with contextlib.suppress(OSError):
            tmp.unlink()
        log.warning("could not cache %s decoded arrays in %s (%s); set dataset.cache_dir or dataset.cache=false",
                    name, folder, e)
    return x
