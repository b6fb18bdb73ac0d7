"""The interface every search-space family implements, and the arch-spec conventions they share."""

from __future__ import annotations

import abc
import dataclasses
import functools
import hashlib
import json
import random
from typing import Any, ClassVar


# json.dumps(..., sort_keys, separators); arch specs hold no containers that could refer to themselves, so the
# circular-reference check (a third of the encoding time) is off: the same text.
_ARCH_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), check_circular=False)


@functools.lru_cache(maxsize=None)
def _short(value: Any) -> str:
    """A field value in a summary: tuples dash-joined ('2-3-1'), nested ones in brackets."""
    if isinstance(value, tuple):
        return "-".join(_short(v) if not isinstance(v, tuple) else f"[{_short(v)}]" for v in value)
    return str(value)


@functools.lru_cache(maxsize=None)
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """Base of every family's arch spec: a frozen, hashable dataclass that round-trips through JSON.

    Subclasses hold only ints, floats, strings and (nested) tuples of them, and set ``space``.
    """

    space: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        def plain(v):
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            return v

        return {"space": self.space, **{f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}}

    def to_json(self) -> str:
        # json writes tuples as lists: what to_dict's conversion gives, without it.
        fields = {"space": self.space, **{name: getattr(self, name) for name in _field_names(type(self))}}
        return _ARCH_JSON.encode(fields)

    def summary(self) -> str:
        """A short line of what identifies this arch among its space's (each family says which fields)."""
        return " ".join(f"{name} {_short(getattr(self, name))}" for name in _field_names(type(self)))

    @functools.cached_property
    def hash(self) -> str:
        """A short stable identifier: equal archs have equal hashes across processes and machines."""
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchSpec":
        if not isinstance(d, dict):
            raise ValueError(f"an arch spec is a JSON object of {cls.__name__} fields, not a {type(d).__name__}")
        d = dict(d)
        space = d.pop("space", cls.space)
        if space != cls.space:
            raise ValueError(f"arch is for search space {space!r}, not {cls.space!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        missing = sorted(names - set(d))
        if unknown or missing:
            raise ValueError(f"{cls.__name__}: unknown fields {unknown}, missing fields {missing}; expected {sorted(names)}")

        def frozen(v):
            if isinstance(v, list):
                return tuple(frozen(x) for x in v)
            return v

        return cls(**{k: frozen(v) for k, v in d.items()})


class SearchSpace(abc.ABC):
    """A family of architectures: sample / mutate / crossover / encode / build_torch / to_ir.

    ``in_channels`` and ``num_classes`` come from the dataset, not the arch.
    """

    name: ClassVar[str] = ""
    arch_class: ClassVar[type[ArchSpec]] = ArchSpec

    @abc.abstractmethod
    def sample(self, trial) -> ArchSpec:
        """Draw an arch through an Optuna trial's ``suggest_*`` calls (conditional parameters allowed)."""

    @abc.abstractmethod
    def random(self, rng: random.Random) -> ArchSpec:
        """Draw an arch uniformly from the space."""

    def distinct_random(self, rng: random.Random, n: int, exclude=(), max_draws: int | None = None) -> list[ArchSpec]:
        """``n`` archs of :meth:`random`, no two alike nor any whose hash is in ``exclude``; fewer when
        ``max_draws`` draws (unbounded when None) do not find that many (a small space)."""
        seen, out, draws = set(exclude), [], 0
        while len(out) < n and (max_draws is None or draws < max_draws):
            arch, draws = self.random(rng), draws + 1
            if arch.hash not in seen:
                seen.add(arch.hash)
                out.append(arch)
        return out

    @abc.abstractmethod
    def mutate(self, arch: ArchSpec, rng: random.Random, prob: float = 0.1) -> ArchSpec:
        """Resample each choice of ``arch`` with probability ``prob``."""

    @abc.abstractmethod
    def crossover(self, a: ArchSpec, b: ArchSpec, rng: random.Random) -> ArchSpec:
        """Take each choice from ``a`` or ``b`` at random."""

    @abc.abstractmethod
    def largest(self, like: ArchSpec) -> ArchSpec:
        """The biggest arch of the space (a distillation teacher), keeping ``like``'s input resolution."""

    @abc.abstractmethod
    def smallest(self) -> ArchSpec:
        """The cheapest arch of the space (every choice at its minimum): if it misses a budget, every arch does."""

    @abc.abstractmethod
    def params(self, arch: ArchSpec) -> dict[str, Any]:
        """The Optuna parameters that :meth:`sample` would suggest to produce ``arch``."""

    @abc.abstractmethod
    def build_torch(self, arch: ArchSpec, in_channels: int, num_classes: int):
        """The PyTorch ``nn.Module`` of ``arch`` (NCHW input)."""

    @abc.abstractmethod
    def to_ir(self, arch: ArchSpec, in_channels: int, num_classes: int):
        """The estimator IR (:class:`estimators.ir.Graph`) of the int8 model, built without PyTorch."""

    @abc.abstractmethod
    def input_shape(self, arch: ArchSpec, in_channels: int) -> tuple[int, ...]:
        """The model's input shape without batch, channels last (H, W, C)."""

    def input_size(self, arch: ArchSpec) -> tuple[int, int]:
        """(height, width) of the model's input: what the data are resized to (an image's resolution, or an
        MFCC / time-series window's fixed size)."""
        h, w = self.input_shape(arch, 1)[:2]
        return int(h), int(w)

    def decode(self, d: dict[str, Any] | str) -> ArchSpec:
        if isinstance(d, str):
            d = json.loads(d)
        arch = self.arch_class.from_dict(d)
        self.check(arch)
        return arch

    def check(self, arch: ArchSpec) -> None:
        """Raise ValueError naming the offending field if ``arch`` is outside this space."""
