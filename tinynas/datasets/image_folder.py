"""Images in class folders: ``root/<class>/*.{png,jpg,jpeg,bmp}``, or ``root/{train,val,test}/<class>/…``.

Class names sort into labels. With split folders, ``train/`` samples are carved into whatever of val / test
has no folder of its own. Images are decoded with Pillow (grey or RGB by ``in_channels``), resized to
``image_size`` (int or [height, width]) and kept as uint8.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from tinynas.datasets.base import TEST, UNASSIGNED, VAL, Source, channels, files_fingerprint, image_size, labels_of, \
    root_dir
from tinynas.errors import ConfigError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
SPLIT_FOLDERS = {"train": UNASSIGNED, "val": VAL, "test": TEST}


def decode_images(paths: Sequence[Path], size: tuple[int, int], in_channels: int, dataset: str) -> np.ndarray:
    """The images at ``paths`` as uint8 N×C×H×W (resized bilinearly to ``size`` = (height, width)); a file
    Pillow cannot read raises ConfigError naming it."""
    from PIL import Image, UnidentifiedImageError

    mode = "L" if in_channels == 1 else "RGB"
    h, w = size

    def one(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as img:
                img.draft(mode, (w, h))  # JPEG: decode at reduced scale when the target is small (much faster)
                arr = np.asarray(img.convert(mode).resize((w, h), Image.BILINEAR), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise ConfigError(f"dataset {dataset}: {path} is not a readable image ({e})") from None
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

    out = np.empty((len(paths), in_channels, h, w), np.uint8)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # Pillow decodes without the GIL
        for i, arr in enumerate(pool.map(one, paths)):
            out[i] = arr
    return out


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())


def image_source(cfg, paths: list[Path], names: list[str], classes: tuple[str, ...], split: np.ndarray | None,
                 default_size: int) -> Source:
    """A Source decoding ``paths`` (labelled by class ``names``) at the config's size and channels."""
    size, c = image_size(cfg, default_size), channels(cfg)
    decode = lambda idx: decode_images([paths[i] for i in idx], size, c, cfg["name"])  # noqa: E731
    fingerprint = files_fingerprint(cfg["name"], size, c, classes, None if split is None else split.tobytes(),
                                    files=paths)
    return Source(labels_of(names, classes), classes, decode, split, fingerprint)


def load(cfg) -> Source:
    expected = "one sub-folder per class of *.png/*.jpg/*.jpeg/*.bmp images (optionally under train/ val/ test/)"
    root = root_dir(cfg, expected, "Arrange your own images that way.")
    split_dirs = {s: root / s for s in SPLIT_FOLDERS if (root / s).is_dir()}
    if "train" not in split_dirs:
        split_dirs = {"train": root}
    paths, names, marks = [], [], []
    for split, folder in split_dirs.items():
        for cls in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
            files = list_images(cls)
            paths += files
            names += [cls.name] * len(files)
            marks += [SPLIT_FOLDERS[split]] * len(files)
    if not paths:
        raise ConfigError(f"dataset {cfg['name']}: root={root} holds no images; expected {expected}")
    classes = tuple(sorted(set(names)))
    return image_source(cfg, paths, names, classes, np.array(marks, np.int8), default_size=32)
