"""What every command resolves from its config: dataset, search space, MCU, runtime, device, run dir."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import OmegaConf

from estimators import MCU, load_mcu
from estimators.sram import RUNTIMES
from search_spaces import SearchSpace, get_space
from tinynas.data import Dataset, load_dataset
from tinynas.errors import ConfigError
from tinynas.paths import MCU_DIR


@dataclasses.dataclass(frozen=True)
class Context:
    space: SearchSpace
    data: Dataset
    mcu: MCU
    host: MCU
    runtime: str
    device: object


def load_mcu_cfg(cfg) -> MCU:
    return MCU.from_dict(OmegaConf.to_container(cfg.mcu, resolve=True))


def load_space(cfg) -> SearchSpace:
    """The configured search space, or the one an ``arch=FILE.json`` names (:mod:`tinynas.commands.arch_space`)."""
    from tinynas.commands.arch_space import explicit_search_space, space_config

    ss = OmegaConf.to_container(cfg.search_space, resolve=True)
    ss = space_config(cfg.get("arch"), ss, explicit_search_space())
    return get_space(ss["name"], ss.get("options"))


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime={runtime!r} is unknown; allowed: {', '.join(RUNTIMES)}")
    return runtime


def set_threads(threads) -> None:
    """``threads=N``: PyTorch's intra-op threads (null keeps torch's default, one per core). One thread is often
    faster for the tiny models of a search on a machine shared with other jobs."""
    if threads is None:
        return
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"threads={threads!r} must be a positive integer or null (torch's default)")
    import torch

    torch.set_num_threads(threads)


def load_common(cfg, with_data: bool = True) -> Context:
    from tinynas.train import resolve_device  # torch: only the commands that train pay its import

    set_threads(cfg.get("threads"))
    return Context(
        space=load_space(cfg),
        data=load_dataset(OmegaConf.to_container(cfg.dataset, resolve=True)) if with_data else None,
        mcu=load_mcu_cfg(cfg),
        host=load_mcu("host", MCU_DIR),
        runtime=check_runtime(cfg.runtime),
        device=resolve_device(cfg.device),
    )


def load_arch(cfg, space: SearchSpace):
    """The arch spec named by ``arch=FILE.json``, checked against the configured search space."""
    import json

    if not cfg.get("arch"):
        raise ConfigError("arch=FILE.json is required (write some with `tinynas sample`)")
    path = Path(cfg.arch)
    if not path.is_file():
        raise ConfigError(f"arch={path}: no such file")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"arch={path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("space"), str):
        got = f"keys {sorted(doc)}" if isinstance(doc, dict) else f"a JSON {type(doc).__name__}"
        raise ConfigError(f"arch={path} is not an arch spec: expected a JSON object with a 'space' field and that "
                          f"space's fields, as `tinynas sample` writes; got {got}")
    if doc["space"] != space.name:
        raise ConfigError(f"arch={path} is for search space {doc['space']!r}; run with search_space={doc['space']}")
    try:
        return space.decode(doc)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"arch={path}: {e}") from None


def run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)
