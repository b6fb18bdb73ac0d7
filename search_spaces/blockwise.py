"""Sampling operators shared by the stage/block-structured families (MobileNetV1/V3, EfficientNet-lite, DS-CNN).

A family declares its choices once, as :class:`Choice` per arch field, at one of three levels:

* ``"arch"``: one value for the whole network (resolution, width...), Optuna parameter ``name``;
* ``"stage"``: one value per stage (depth, activation...), parameter ``s{s}.{name}``; its choices are
  given per stage (a tuple of choice tuples, one per stage);
* ``"block"``: one value per block of a stage (kernel, expand...), parameter ``s{s}.b{b}.{name}``; the
  arch field is a tuple (per stage) of tuples (per block).

:class:`BlockwiseSpace` derives sample / params / random / mutate / crossover / smallest / largest /
check from that declaration. Tuple-valued choices (rectangular kernels) appear in Optuna as "3x3" labels.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import random
from typing import Any, Callable, ClassVar

from search_spaces.base import ArchSpec, SearchSpace

LEVELS = ("arch", "stage", "block")


@dataclasses.dataclass(frozen=True)
class Choice:
    """The allowed values of one arch field; ``cost`` orders them cheapest first (default: the value, or
    the product of a tuple) for :meth:`BlockwiseSpace.smallest` / ``largest``; ``param`` names the Optuna
    parameter (default: the field name)."""

    level: str
    choices: tuple
    cost: Callable[[Any], Any] | None = None
    param: str | None = None

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"choice level {self.level!r} is not one of {LEVELS}")

    def order(self, value) -> Any:
        if self.cost is not None:
            return self.cost(value)
        return math.prod(value) if isinstance(value, tuple) else value


def label(value) -> Any:
    """The Optuna categorical value of a choice: tuples become 'AxB' strings."""
    return "x".join(map(str, value)) if isinstance(value, tuple) else value


def freeze(value):
    """Lists (from YAML / JSON) to tuples, recursively."""
    return tuple(freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


class BlockwiseSpace(SearchSpace):
    """A :class:`SearchSpace` whose arch fields are all declared by :meth:`choices`.

    ``input_fields`` name the arch fields that fix the input shape: :meth:`largest` keeps them.
    """

    input_fields: ClassVar[tuple[str, ...]] = ("resolution",)

    @abc.abstractmethod
    def choices(self) -> dict[str, Choice]:
        """Arch field name → its :class:`Choice`, in the arch dataclass's field order."""

    @property
    def num_stages(self) -> int:
        """Number of stages with searched blocks (default: one per entry of the space's ``stages``)."""
        return len(self.stages)

    def depth(self, values: dict[str, Any], s: int) -> int:
        """Blocks in stage ``s`` given the arch- and stage-level values chosen so far (default: ``depths``)."""
        return values["depths"][s]

    @classmethod
    def from_config(cls, cfg: dict[str, Any]):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - fields)
        if unknown:
            raise ValueError(f"search_space {cls.name}: unknown options {unknown}; allowed: {sorted(fields)}")
        space = cls(**{k: freeze(v) for k, v in cfg.items()})
        space.validate_options()
        return space

    def validate_options(self) -> None:
        """Raise ValueError naming an option whose value cannot work (override to add checks)."""
        for name, c in self.choices().items():
            per = c.choices if c.level == "stage" else (c.choices,)
            if c.level == "stage" and len(per) != self.num_stages:
                raise ValueError(f"search_space {self.name}: {name} has choices for {len(per)} stages, "
                                 f"the space has {self.num_stages}")
            if any(len(ch) == 0 for ch in per):
                raise ValueError(f"search_space {self.name}: no choices for {name}")

    # -- one walk over every choice, used by every operator ------------------------------------------
    def _walk(self, pick: Callable[[str, str, tuple, Choice, tuple], Any]) -> ArchSpec:
        """Build an arch choosing each value with ``pick(param, field, choices, choice, (s, b))``."""
        spec = self.choices()
        values: dict[str, Any] = {}
        for name, c in spec.items():
            if c.level == "arch":
                values[name] = pick(c.param or name, name, c.choices, c, (None, None))
            else:
                values[name] = []
        for s in range(self.num_stages):
            for name, c in spec.items():
                if c.level == "stage":
                    values[name].append(pick(f"s{s}.{c.param or name}", name, c.choices[s], c, (s, None)))
            d = self.depth(values, s)
            for name, c in spec.items():
                if c.level == "block":
                    values[name].append(tuple(pick(f"s{s}.b{b}.{c.param or name}", name, c.choices, c, (s, b))
                                              for b in range(d)))
        return self.arch_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    @staticmethod
    def _slot(arch: ArchSpec, name: str, where: tuple) -> Any:
        """``arch``'s value at a (stage, block) slot; blocks past a stage's depth repeat its last block."""
        s, b = where
        v = getattr(arch, name)
        if s is None:
            return v
        v = v[s]
        if b is None:
            return v
        return v[min(b, len(v) - 1)]

    # -- SearchSpace ---------------------------------------------------------------------------------
    def sample(self, trial) -> ArchSpec:
        def pick(param, name, choices, c, where):
            labels = [label(x) for x in choices]
            return choices[labels.index(trial.suggest_categorical(param, labels))]

        return self._walk(pick)

    def params(self, arch: ArchSpec) -> dict[str, Any]:
        out: dict[str, Any] = {}

        def pick(param, name, choices, c, where):
            out[param] = label(v := self._slot(arch, name, where))
            return v

        self._walk(pick)
        return out

    def random(self, rng: random.Random) -> ArchSpec:
        return self._walk(lambda param, name, choices, c, where: rng.choice(choices))

    def mutate(self, arch: ArchSpec, rng: random.Random, prob: float = 0.1) -> ArchSpec:
        def pick(param, name, choices, c, where):
            return rng.choice(choices) if rng.random() < prob else self._slot(arch, name, where)

        return self._walk(pick)

    def crossover(self, a: ArchSpec, b: ArchSpec, rng: random.Random) -> ArchSpec:
        return self._walk(lambda param, name, choices, c, where:
                          self._slot(a if rng.random() < 0.5 else b, name, where))

    def smallest(self) -> ArchSpec:
        return self._walk(lambda param, name, choices, c, where: min(choices, key=c.order))

    def largest(self, like: ArchSpec) -> ArchSpec:
        def pick(param, name, choices, c, where):
            if name in self.input_fields:
                return getattr(like, name)
            return max(choices, key=c.order)

        return self._walk(pick)

    def check(self, arch: ArchSpec) -> None:
        spec = self.choices()
        values = {name: getattr(arch, name) for name in spec}
        for name, c in spec.items():
            if c.level != "arch" and len(values[name]) != self.num_stages:
                raise ValueError(f"{self.name} arch: {name} has {len(values[name])} stages, the space has "
                                 f"{self.num_stages}")
        for s in range(self.num_stages):
            d = self.depth(values, s)
            for name, c in spec.items():
                if c.level == "block" and len(values[name][s]) != d:
                    raise ValueError(f"{self.name} arch: stage {s} has {d} blocks but {len(values[name][s])} "
                                     f"{name}")

        def pick(param, name, choices, c, where):
            v = self._slot(arch, name, where)
            if v not in choices:
                at = "".join(f"[{i}]" for i in where if i is not None)
                raise ValueError(f"{self.name} arch: {name}{at}={v!r} is not in the space; allowed: "
                                 f"{list(choices)}")
            return v

        self._walk(pick)
