"""CIFAR-10 from the python pickles (``data_batch_1``…``data_batch_5``, ``test_batch``, ``batches.meta``).

The test split is ``test_batch``; validation is carved from the 50,000 training images (``val_fraction``).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from tinynas.datasets.base import TEST, UNASSIGNED, Source, root_dir
from tinynas.errors import ConfigError

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
GET = ("Download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz yourself and extract it: "
       "its cifar-10-batches-py folder is the root.")


# The globals a CIFAR-10 pickle may name: numpy's array, dtype and scalar reconstruction (the layouts of numpy's
# pickle protocols 2 to 5) and ``_codecs.encode``, which Python 3 writes for bytes at protocol 2. None of them
# runs anything beyond building an array; every other global (``os.system``, ``builtins.eval`` ...) is refused.
SAFE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class UnsafePickle(pickle.UnpicklingError):
    """A pickle that names a global outside :data:`SAFE_GLOBALS`."""


class _CifarUnpickler(pickle.Unpickler):
    """Admits only what the CIFAR-10 format holds: dicts, lists, str, bytes, numbers and numpy arrays."""

    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_GLOBALS:
            raise UnsafePickle(f"{module}.{name}")
        return super().find_class(module, name)


def _pickle(path: Path, name: str) -> dict:
    if not path.is_file():
        raise ConfigError(f"dataset {name}: {path} is missing; the root must hold {', '.join(TRAIN_FILES)}, "
                          f"test_batch and batches.meta. {GET}")
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="latin1").load()
    except UnsafePickle as e:
        raise ConfigError(f"dataset {name}: {path} refused: the pickle calls {e}, which no CIFAR-10 batch holds "
                          f"(only dicts, lists, strings, numbers and numpy arrays are loaded); nothing was run") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise ConfigError(f"dataset {name}: {path} is not a CIFAR-10 python pickle ({e}). {GET}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"dataset {name}: {path} holds a {type(d).__name__}; expected a dict. {GET}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}


def _batch(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    d = _pickle(path, name)
    if "data" not in d or "labels" not in d:
        raise ConfigError(f"dataset {name}: {path} has keys {sorted(d)}; expected 'data' (N×3072 uint8) and "
                          "'labels'")
    x, y = np.asarray(d["data"]), np.asarray(d["labels"], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise ConfigError(f"dataset {name}: {path} 'data' is {x.dtype} {x.shape} with {len(y)} labels; expected "
                          "uint8 rows of 3072 (3×32×32) and one label per row")
    return x.reshape(-1, 3, 32, 32), y


def load(cfg) -> Source:
    name = cfg["name"]
    root = root_dir(cfg, f"{', '.join(TRAIN_FILES)}, test_batch and batches.meta", GET)
    meta = _pickle(root / "batches.meta", name)
    classes = tuple(meta.get("label_names", ()))
    if not classes:
        raise ConfigError(f"dataset {name}: {root / 'batches.meta'} has no 'label_names'; expected the 10 names")
    parts = [_batch(root / f, name) for f in (*TRAIN_FILES, "test_batch")]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    if y.min() < 0 or y.max() >= len(classes):
        raise ConfigError(f"dataset {name}: labels span {y.min()}..{y.max()} but batches.meta names "
                          f"{len(classes)} classes")
    split = np.full(len(y), UNASSIGNED, np.int8)
    split[-len(parts[-1][1]):] = TEST
    return Source(y, classes, lambda idx: x[idx], split)
