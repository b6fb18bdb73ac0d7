"""Checkpoints: the arch spec, the dataset's shape and the weights, loaded safely (``weights_only=True``)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
from torch import nn

from search_spaces.base import ArchSpec, SearchSpace
from tinynas.errors import ConfigError


def save_checkpoint(path: Path, model: nn.Module, arch: ArchSpec, in_channels: int, num_classes: int,
                    metrics: dict | None = None) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"arch": arch.to_dict(), "in_channels": in_channels, "num_classes": num_classes,
                "metrics": metrics or {}, "state_dict": model.state_dict()}, tmp)
    tmp.replace(path)
    return path


def _first_line(e: Exception) -> str:
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def load_checkpoint(path: str | Path, space: SearchSpace, arch: ArchSpec | None, in_channels: int,
                    num_classes: int) -> tuple[nn.Module, ArchSpec]:
    """The model stored at ``path``; a clear error when the file is unreadable or was saved for another arch."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint={path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refused a global (name it, in one line), or any other format problem
        refused = re.search(r"GLOBAL (\S+)", str(e)) if isinstance(e, pickle.UnpicklingError) else None
        if refused:
            raise ConfigError(f"checkpoint={path} refused: it pickles {refused[1]}, which no checkpoint holds (only "
                              f"tensors, numbers, strings and containers are loaded); nothing was run") from None
        raise ConfigError(f"checkpoint={path} is not a tinynas checkpoint or is corrupt ({_first_line(e)})") from None
    try:
        stored = space.decode(ckpt["arch"])
        state = ckpt["state_dict"]
    except Exception as e:  # a loadable file of another shape
        raise ConfigError(f"checkpoint={path} is not a tinynas checkpoint ({_first_line(e)})") from None
    if arch is not None and stored.hash != arch.hash:
        raise ConfigError(f"checkpoint={path} was saved for arch {stored.hash}, not the requested arch {arch.hash}")
    if (ckpt.get("in_channels"), ckpt.get("num_classes")) != (in_channels, num_classes):
        raise ConfigError(f"checkpoint={path} expects {ckpt.get('in_channels')} input channels and "
                          f"{ckpt.get('num_classes')} classes; the dataset has {in_channels} and {num_classes}")
    model = space.build_torch(stored, in_channels, num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(f"checkpoint={path} does not match arch {stored.hash}: {str(e).splitlines()[0]}") from None
    return model.eval(), stored
