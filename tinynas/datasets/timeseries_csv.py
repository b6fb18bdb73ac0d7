"""Time series (accelerometer, IMU, sensors) from CSV as windows N×C×T×1, C = the feature columns.

``root`` is one long CSV or a folder of CSVs (searched recursively, one recording each). Every CSV has a header;
``label_column`` (default ``label``) names each row's class, or, when a file lacks that column, the file's
folder name is its label (``root/<class>/*.csv``). ``feature_columns`` (default: every other column except
``recording_column``) become channels. Windows of ``window`` rows every ``stride`` rows (default: ``window``)
never cross a file or a change of ``recording_column``, and a window whose rows disagree on the label is
dropped. ``split_by: window`` (default) carves splits over windows (overlapping windows can then straddle
splits); ``split_by: recording`` keeps each recording (file, or ``recording_column`` value) in one split.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from tinynas.datasets.base import TEST, TRAIN, UNASSIGNED, VAL, Source, root_dir
from tinynas.errors import ConfigError


def _read(path: Path, root: Path, cfg) -> tuple[list[str], list[str], np.ndarray]:
    """(label per row, recording per row, float32 rows × features) of one CSV."""
    name, label_col, rec_col = cfg["name"], cfg.get("label_column", "label"), cfg.get("recording_column")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ConfigError(f"dataset {name}: {path} is empty; expected a header row and data rows")
    header = [h.strip() for h in rows[0]]
    features = list(cfg.get("feature_columns") or [h for h in header if h not in (label_col, rec_col)])
    missing = [c for c in features + ([rec_col] if rec_col else []) if c not in header]
    if missing:
        raise ConfigError(f"dataset {name}: {path} lacks the columns {missing}; it has {header}")
    if label_col not in header and path.parent == root:
        raise ConfigError(f"dataset {name}: {path} has no {label_col!r} column (it has {header}) and is not inside "
                          "a folder named after its class; add the column or move the file to root/<class>/")
    cols = [header.index(c) for c in features]
    x = np.empty((len(rows) - 1, len(cols)), np.float32)
    for r, row in enumerate(rows[1:]):
        try:
            x[r] = [float(row[c]) for c in cols]
        except (ValueError, IndexError):
            raise ConfigError(f"dataset {name}: {path} line {r + 2}: {row!r} has no number in every column of "
                              f"{features}") from None
    labels = [row[header.index(label_col)].strip() for row in rows[1:]] if label_col in header \
        else [path.parent.name] * len(x)
    recs = [f"{path}#{row[header.index(rec_col)]}" for row in rows[1:]] if rec_col else [str(path)] * len(x)
    return labels, recs, x


def _windows(labels: list[str], recs: list[str], n: int, window: int, stride: int):
    """Start row, label and recording of each window lying inside one recording with one label."""
    start = 0
    while start < n:
        end = start
        while end < n and recs[end] == recs[start]:
            end += 1
        for s in range(start, end - window + 1, stride):
            if labels[s] == labels[s + window - 1] and len(set(labels[s:s + window])) == 1:
                yield s, labels[s], recs[s]
        start = end


def _by_recording(recs: list[str], cfg) -> np.ndarray:
    names = sorted(set(recs))
    if len(names) < 3:
        raise ConfigError(f"dataset {cfg['name']}: split_by=recording needs at least 3 recordings; found "
                          f"{len(names)}")
    order = np.random.default_rng(int(cfg.get("split_seed", 0))).permutation(len(names))
    n_test = max(1, round(len(names) * float(cfg.get("test_fraction", 0.15))))
    n_val = max(1, round(len(names) * float(cfg.get("val_fraction", 0.15))))
    split = {names[i]: TEST if k < n_test else VAL if k < n_test + n_val else TRAIN for k, i in enumerate(order)}
    return np.array([split[r] for r in recs], np.int8)


def load(cfg) -> Source:
    name = cfg["name"]
    root = root_dir(cfg, "CSV files with a header row (feature columns and a label column)",
                    "Record or export your own time series that way.", file_ok=True)
    window, stride = int(cfg.get("window", 128)), int(cfg.get("stride") or cfg.get("window", 128))
    if window < 1 or stride < 1:
        raise ConfigError(f"dataset {name}: window={window} and stride={stride} must be positive")
    split_by = cfg.get("split_by", "window")
    if split_by not in ("window", "recording"):
        raise ConfigError(f"dataset {name}: split_by={split_by!r} is unknown; allowed: window, recording")
    files = [root] if root.is_file() else sorted(root.rglob("*.csv"))
    if not files:
        raise ConfigError(f"dataset {name}: {root} holds no *.csv files")
    root_folder = root.parent if root.is_file() else root
    labels, recs, parts = [], [], []
    for path in files:
        lab, rec, x = _read(path, root_folder, cfg)
        if parts and x.shape[1] != parts[0].shape[1]:
            raise ConfigError(f"dataset {name}: {path} has {x.shape[1]} feature columns; {files[0]} has "
                              f"{parts[0].shape[1]}")
        labels += lab
        recs += rec
        parts.append(x)
    data = np.concatenate(parts)
    found = list(_windows(labels, recs, len(data), window, stride))
    if not found:
        raise ConfigError(f"dataset {name}: no window of {window} rows with a single label in {root}; lower "
                          "dataset.window or check the label column")
    starts = np.array([s for s, _, _ in found])
    classes = tuple(sorted({lab for _, lab, _ in found}))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[lab] for _, lab, _ in found], np.int64)
    split = _by_recording([r for _, _, r in found], cfg) if split_by == "recording" else \
        np.full(len(y), UNASSIGNED, np.int8)
    offsets = np.arange(window)

    def decode(idx: np.ndarray) -> np.ndarray:
        return data[starts[idx][:, None] + offsets].transpose(0, 2, 1)[..., None].copy()  # N×C×T×1

    return Source(y, classes, decode, split, fixed_size=True)
