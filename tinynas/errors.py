"""Errors the CLI turns into a one-paragraph message and a non-zero exit, without a traceback."""


class TinyNASError(Exception):
    """Base of every error caused by the user's input or environment rather than a bug."""


class ConfigError(TinyNASError, ValueError):
    """A configuration value is unknown or impossible; the message names it and what is allowed."""
