"""The search space an ``arch=FILE.json`` names: the file says which space it is, so no command needs to be
told; only an explicit ``search_space=`` that disagrees with the file is an error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tinynas.errors import ConfigError
from tinynas.paths import CONF_DIR


def explicit_search_space() -> str | None:
    """The ``search_space=`` (or ``search_space.name=``) the command line gave, None if it gave none (or no
    Hydra run is active, as under the compose API)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    for override in HydraConfig.get().overrides.task:
        key, _, value = override.partition("=")
        if key.lstrip("+~") in ("search_space", "search_space.name"):
            return value
    return None


def file_space(arch: Any) -> str | None:
    """The ``space`` an arch JSON file names; None when ``arch`` is not a readable JSON object with one
    (:func:`tinynas.commands.common.load_arch` reports those files)."""
    path = Path(str(arch)) if arch else None
    if path is None or not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    space = doc.get("space") if isinstance(doc, dict) else None
    return space if isinstance(space, str) else None


def space_config(arch: Any, configured: dict[str, Any], explicit: str | None) -> dict[str, Any]:
    """The search-space config (``name``, ``options``) to read ``arch`` with: the configured one when it is the
    file's space (its options kept), else the file's space from ``conf/search_space/<space>.yaml``;
    ``explicit``: the command line's ``search_space=``, an error when its space is not the file's."""
    named = file_space(arch)
    if named is None or named == configured.get("name"):
        return configured
    if explicit is not None:
        raise ConfigError(f"arch={arch} is for search space {named!r}, but search_space={explicit} is "
                          f"{configured.get('name')!r}; drop search_space= (the file names its space) or give "
                          f"search_space={named}")
    path = CONF_DIR / "search_space" / f"{named}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / "search_space").glob("*.yaml"))
        raise ConfigError(f"arch={arch} names search space {named!r}; allowed: {', '.join(known)}")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)
