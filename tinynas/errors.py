"""Errors the CLI turns into a one-paragraph message and a non-zero exit, without a traceback."""

import dataclasses


class TinyNASError(Exception):
    """Base of every error caused by the user's input or environment rather than a bug."""


class ConfigError(TinyNASError, ValueError):
    """A configuration value is unknown or impossible; the message names it and what is allowed."""


def check_options(cls, cfg, where: str) -> None:
    """Refuse keys of ``cfg`` that are not fields of the dataclass ``cls``, naming them and the allowed ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(cfg) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown options {unknown}; allowed: {sorted(names)}")
