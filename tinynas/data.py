"""Datasets: deterministic train / val / test splits as float32 NCHW arrays, normalised, never downloaded.

The formats live in :mod:`tinynas.datasets` (one module each); this module turns a loader's
:class:`~tinynas.datasets.Source` into the in-memory :class:`Dataset` the engine trains on: splits (the
dataset's own, else stratified and seeded), optional caps, decoding through the cache, normalisation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tinynas.datasets import get_loader
from tinynas.datasets.base import TEST, TRAIN, UNASSIGNED, VAL, Source
from tinynas.datasets.cache import cache_dir, cached
from tinynas.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32, N×C×H×W, normalised
    y: np.ndarray  # int64 labels
    fixed: bool = False  # features whose H×W must not be resized (MFCC frames, time-series windows)

    def __len__(self) -> int:
        return len(self.y)


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: float
    std: float
    classes: tuple[str, ...] = ()
    raw_scale: float = 1.0  # a raw sample times this, minus mean, over std, is the input: 1/255 for 8-bit images

    @property
    def in_channels(self) -> int:
        return self.train.x.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.x.shape[2:])


def split_indices(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int):
    """Stratified, seeded split into train / val / test index arrays."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test:n_test + n_val])
        parts[0].append(idx[n_test + n_val:])
    return [rng.permutation(np.concatenate(p)) for p in parts]


def subsample(indices: np.ndarray, labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` of ``indices`` (all when fewer), seeded, each class keeping its share (stratified)."""
    if count >= len(indices):
        return indices
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(indices))
    y = labels[indices[order]]
    rank = np.empty(len(y))
    for c in np.unique(y):
        at = np.flatnonzero(y == c)
        rank[at] = (np.arange(len(at)) + rng.random()) / len(at)  # position within its class, 0..1
    return indices[order[np.argsort(rank, kind="stable")[:count]]]


def assign_splits(src: Source, val_fraction: float, test_fraction: float, seed: int) -> list[np.ndarray]:
    """Train / val / test indices: the source's own marks, unassigned samples carved by the fractions
    (a split the source already fixes gets nothing carved)."""
    marks = np.full(len(src.y), UNASSIGNED, np.int8) if src.split is None else np.asarray(src.split)
    own = [np.flatnonzero(marks == s) for s in (TRAIN, VAL, TEST)]
    free = np.flatnonzero(marks == UNASSIGNED)
    if len(free):
        vf = 0.0 if len(own[1]) else val_fraction
        tf = 0.0 if len(own[2]) else test_fraction
        carved = split_indices(src.y[free], vf, tf, seed)
        own = [np.concatenate([o, free[c]]) for o, c in zip(own, carved)]
    return own


def _caps(cfg, parts: list[np.ndarray], y: np.ndarray, seed: int) -> list[np.ndarray]:
    total = sum(len(p) for p in parts)
    out = list(parts)
    for key in ("max_samples", "max_train_samples"):
        cap = cfg.get(key)
        if cap is not None and (not isinstance(cap, int) or cap < 1):
            raise ConfigError(f"dataset {cfg['name']}: {key}={cap!r} must be a positive int or null")
    if cfg.get("max_samples") is not None:
        share = cfg["max_samples"] / max(total, 1)
        out = [subsample(p, y, max(1, int(round(len(p) * share))), seed + i) for i, p in enumerate(out)]
    if cfg.get("max_train_samples") is not None:
        out[0] = subsample(out[0], y, cfg["max_train_samples"], seed + 10)
    return out


def normalise(x: np.ndarray, n_train: int) -> tuple[np.ndarray, float, float]:
    """float32 ``(x - mean) / std`` with the first ``n_train`` samples' statistics (uint8 images scaled to [0, 1]).

    uint8 statistics are summed exactly in float64 over small chunks, so the only large allocation is the
    output (first-touching a temporary of a full CIFAR-10 or VWW array costs seconds)."""
    if x.dtype == np.uint8:
        train = x[:n_train].reshape(n_train, -1)
        total = squares = 0.0
        for i in range(0, n_train, 2048):
            chunk = train[i:i + 2048].astype(np.float64)
            total += chunk.sum()
            squares += np.square(chunk, out=chunk).sum()
        mean = total / train.size / 255
        std = float(np.sqrt(max(squares / train.size / 255**2 - mean**2, 0.0))) or 1.0
        out = np.multiply(x, np.float32(1 / (255 * std)), dtype=np.float32)
        out -= np.float32(mean / std)
        return out, mean, std
    x = x.astype(np.float32)  # a copy: normalised in place
    mean, std = float(x[:n_train].mean()), float(x[:n_train].std()) or 1.0
    x -= mean
    x /= std
    return x, mean, std


def load_dataset(cfg) -> Dataset:
    """The dataset named by ``cfg.name`` (a ``conf/dataset`` entry), split and normalised with train statistics."""
    name = cfg["name"]
    loader = get_loader(name)
    vf, tf = float(cfg.get("val_fraction", 0.15)), float(cfg.get("test_fraction", 0.15))
    if not (0 < vf < 1 and 0 < tf < 1 and vf + tf < 1):
        raise ConfigError(f"dataset {name}: val_fraction={vf} and test_fraction={tf} must be in (0, 1) and sum below 1")
    seed = int(cfg.get("split_seed", 0))
    src = loader(cfg)
    parts = _caps(cfg, assign_splits(src, vf, tf, seed), src.y, seed)
    if not all(len(p) for p in parts):
        raise ConfigError(f"dataset {name}: a split is empty (train/val/test sizes {[len(p) for p in parts]}); "
                          "add data, raise max_samples or change val_fraction/test_fraction")
    x = cached(cache_dir(cfg.get("cache_dir", None) if cfg.get("cache", True) else False), name, src.fingerprint,
               np.concatenate(parts), src.decode)
    declared = {k: cfg[k] for k in ("in_channels", "num_classes") if cfg.get(k) is not None}
    actual = {"in_channels": x.shape[1], "num_classes": len(src.classes)}
    if any(actual[k] != v for k, v in declared.items()):
        raise ConfigError(f"dataset {name}: the config declares {declared} but the data has {actual}")
    bounds = np.cumsum([0] + [len(p) for p in parts])
    raw_scale = src.raw_scale or (1 / 255 if x.dtype == np.uint8 else 1.0)  # stored value → (x - mean) / std
    x, mean, std = normalise(x, bounds[1])
    splits = [Split(x[a:b], src.y[p], src.fixed_size) for a, b, p in zip(bounds[:-1], bounds[1:], parts)]
    return Dataset(name, *splits, num_classes=len(src.classes), mean=mean, std=std, classes=tuple(src.classes),
                   raw_scale=raw_scale)


def _pair(size) -> tuple[int, int]:
    return (int(size), int(size)) if np.ndim(size) == 0 else (int(size[0]), int(size[1]))


def resize(x: np.ndarray, size) -> np.ndarray:
    """Bilinear resize of an N×C×H×W batch to ``size`` (an int: square; or (height, width)); identity when equal."""
    h, w = _pair(size)
    if x.shape[-2:] == (h, w):
        return x
    import torch
    import torch.nn.functional as F

    t = F.interpolate(torch.from_numpy(x), size=(h, w), mode="bilinear", align_corners=False)
    return t.numpy()


def at_resolution(split: Split, size) -> Split:
    """``split`` resized to ``size`` (int or (height, width)); fixed-size features only pass through unchanged."""
    if split.fixed:
        if tuple(split.x.shape[-2:]) != _pair(size):
            raise ConfigError(f"the data are fixed-size features of {split.x.shape[-2]}×{split.x.shape[-1]} "
                              f"(not resizable images), but the model asks for input {_pair(size)}; set the "
                              f"search space's input size to [{split.x.shape[-2]}, {split.x.shape[-1]}]")
        return split
    return Split(resize(split.x, size), split.y)
