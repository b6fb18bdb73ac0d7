"""Dataset loaders by name (the ``dataset=`` config group), one module per on-disk format, imported on use."""

from __future__ import annotations

import importlib

from tinynas.datasets.base import Loader, Source
from tinynas.errors import ConfigError

_BUILTIN = {
    "mnist": "packaged:mnist",
    "digits": "packaged:digits",
    "cifar10": "cifar10:load",
    "vww": "vww:load",
    "speech_commands": "speech_commands:load",
    "image_folder": "image_folder:load",
    "timeseries_csv": "timeseries_csv:load",
    "espeak_keywords": "espeak_keywords:load",  # synthesised into root, then read as speech_commands
}
_REGISTERED: dict[str, Loader] = {}


def register(name: str, loader: Loader) -> None:
    """Add a loader (``loader(cfg) -> Source``) under ``name``; it shadows a built-in one of that name."""
    _REGISTERED[name] = loader


def available() -> list[str]:
    return sorted({*_BUILTIN, *_REGISTERED})


def get_loader(name: str) -> Loader:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _BUILTIN:
        raise ConfigError(f"unknown dataset {name!r}; available: {', '.join(available())}")
    module, func = _BUILTIN[name].split(":")
    return getattr(importlib.import_module(f"tinynas.datasets.{module}"), func)


__all__ = ["Loader", "Source", "available", "get_loader", "register"]
