"""Registry of search-space families by name (timm-style): one module per family registers itself."""

from __future__ import annotations

from typing import Any, Callable

from search_spaces.base import SearchSpace

_REGISTRY: dict[str, Callable[[dict[str, Any]], SearchSpace]] = {}


def register(name: str, factory: Callable[[dict[str, Any]], SearchSpace]) -> None:
    if name in _REGISTRY:
        raise ValueError(f"search space {name!r} is already registered")
    _REGISTRY[name] = factory


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_space(name: str, options: dict[str, Any] | None = None) -> SearchSpace:
    """The search space ``name`` configured with ``options`` (the keys of its conf/search_space YAML)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown search space {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name](dict(options or {}))
