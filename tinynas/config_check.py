"""One validation pass over the composed config of every command: the type and range of each shared key.

The CLI runs :func:`validate` right after Hydra composes the config (and again in each job of a ``--multirun``),
so no command needs its own checks for these keys and a wrong value is one line naming the key, the value and
what is allowed, never a ``TypeError`` deep inside a command. A key a command's config lacks is skipped.
Checks that need the loaded MCU, dataset or search space (objective names, budgets the space can meet) stay
with the code that loads them.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tinynas.errors import ConfigError

_ABSENT = object()


@dataclasses.dataclass(frozen=True)
class Rule:
    allowed: str                   # what is allowed, in words (the error message's tail)
    ok: Callable[[Any], bool]


def _int(lo: int | None = None) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and (lo is None or v >= lo)


def _positive_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _or_null(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _names(v: Any) -> bool:
    return (OmegaConf.is_list(v) or isinstance(v, list)) and len(v) > 0 and all(isinstance(s, str) for s in v)


def _not_a_folder(v: Any) -> bool:
    return v is None or not Path(str(v)).expanduser().is_dir()


RULES: dict[str, Rule] = {
    "seed": Rule("an integer", _int()),
    "n_trials": Rule("an integer ≥ 0 (the study's total; 0 runs no new trial and rebuilds the outputs of the "
                     "trials the study holds)", _int(0)),
    "n": Rule("an integer ≥ 1", _int(1)),
    "timeout_s": Rule("a positive number of seconds, or null (no time limit)", _or_null(_positive_number)),
    "worker": Rule("an integer ≥ 0 (this worker's index in a --multirun sweep; worker 0 deploys)", _int(0)),
    "threads": Rule("an integer ≥ 1, or null (torch's default)", _or_null(_int(1))),
    "deploy": Rule("true or false", lambda v: isinstance(v, bool)),
    "objectives": Rule("a list of objective names, e.g. objectives=[accuracy,sram]", _names),
    "budgets.sram_bytes": Rule("a positive integer (bytes), or null (the MCU's SRAM)", _or_null(_int(1))),
    "budgets.flash_bytes": Rule("a positive integer (bytes), or null (the MCU's flash)", _or_null(_int(1))),
    "budgets.latency_ms": Rule("a positive number (milliseconds), or null (no latency budget)",
                               _or_null(_positive_number)),
    "search.resample_attempts": Rule("an integer ≥ 0 (0 turns resampling off)", _int(0)),
    "storage_options.heartbeat_interval": Rule("an integer ≥ 1 (seconds)", _int(1)),
    "storage_options.grace_period": Rule("an integer ≥ 1 (seconds)", _int(1)),
    "storage_options.max_retry": Rule("an integer ≥ 0", _int(0)),
    "train.epochs": Rule("an integer ≥ 0", _int(0)),
    "train.batch_size": Rule("an integer ≥ 1", _int(1)),
    "train.lr": Rule("a positive number", _positive_number),
    "arch": Rule("an arch JSON file or a named arch, not a folder", _not_a_folder),
    "model": Rule("a .tflite or .onnx file, not a folder", _not_a_folder),
    "checkpoint": Rule("a checkpoint file (.pt), not a folder", _not_a_folder),
}


def _shown(value: Any) -> str:
    value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return "null" if value is None else repr(value)


def validate(cfg) -> None:
    """Raise a :class:`ConfigError` for the first key of :data:`RULES` whose value ``cfg`` holds is not allowed."""
    for key, rule in RULES.items():
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT)
        except OmegaConfBaseException as e:
            raise ConfigError(f"{key}: {str(e).splitlines()[0]}") from None
        if value is not _ABSENT and not rule.ok(value):
            raise ConfigError(f"{key}={_shown(value)} is not allowed; expected {rule.allowed}")
