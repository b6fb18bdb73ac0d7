"""The accuracy evaluator interface: how a search scores a candidate that fits the budgets.

An evaluator turns a feasible arch into the value of the ``accuracy`` objective (higher is better): a short
proxy training (``train``), a training-free proxy (``zero_cost``) or a weight-sharing super-network
(``supernet``). Evaluators are chosen with the ``evaluator=`` config group; ``conf/evaluator/<name>.yaml``
holds ``name: <name>`` and the evaluator's options, passed to its constructor as keyword arguments.
A new evaluator is one module ``tinynas/evaluators/<name>.py`` whose class is decorated with
:func:`register_evaluator`, plus its YAML.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
from pathlib import Path
from typing import Any, ClassVar

from search_spaces.base import ArchSpec, SearchSpace
from tinynas.data import Dataset
from tinynas.errors import ConfigError
from tinynas.train import TrainConfig


@dataclasses.dataclass
class EvaluationContext:
    """What every evaluator may use: the space, the data, where to compute, the seed and the proxy-training
    settings, and a folder for state worth keeping across runs (a super-network checkpoint); None in tests."""

    space: SearchSpace
    data: Dataset
    device: Any
    seed: int
    train_cfg: TrainConfig
    run_dir: Path | None = None


class BaseEvaluator(abc.ABC):
    """Scores feasible archs. ``prepare`` runs once per worker before the first score (train or load a
    super-network); ``score`` returns the trial's user attributes, ``accuracy`` among them."""

    name: ClassVar[str] = ""

    def __init__(self, ctx: EvaluationContext, **options: Any):
        if options:
            raise ConfigError(f"evaluator={self.name}: unknown options {sorted(options)}")
        self.ctx = ctx

    def prepare(self) -> None:
        """One-off work before the first :meth:`score` (nothing by default)."""

    @abc.abstractmethod
    def score(self, trial, arch: ArchSpec) -> dict[str, Any]:
        """User attributes for ``arch``: ``accuracy`` (float, higher is better) and any evaluator-specific
        figures (``epochs``, ``synflow`` ...). ``trial`` is the Optuna trial (for its number, its study, and
        ``trial.report`` where an evaluator reports intermediate values)."""


_REGISTRY: dict[str, type[BaseEvaluator]] = {}
BUILTIN = ("train", "zero_cost", "supernet")


def register_evaluator(cls: type[BaseEvaluator]) -> type[BaseEvaluator]:
    """Class decorator: make ``cls`` available as ``evaluator=<cls.name>``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def evaluator_class(name: str) -> type[BaseEvaluator]:
    """The evaluator registered as ``name`` (built-in modules are imported on first use)."""
    if name not in _REGISTRY and name in BUILTIN:
        importlib.import_module(f"tinynas.evaluators.{name}")
    if name not in _REGISTRY:
        raise ConfigError(f"evaluator={name!r} is unknown; allowed: {', '.join(sorted(set(BUILTIN) | set(_REGISTRY)))}")
    return _REGISTRY[name]


def make_evaluator(cfg: dict[str, Any], ctx: EvaluationContext) -> BaseEvaluator:
    """The evaluator a ``conf/evaluator/*.yaml`` node describes (``name`` plus options)."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if not name:
        raise ConfigError("evaluator config has no name; pick one of: " + ", ".join(BUILTIN))
    return evaluator_class(str(name))(ctx, **cfg)
