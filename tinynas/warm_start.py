"""Warm starts: known-good archs enqueued as a study's first trials (``search.enqueue``).

Each entry is an arch JSON file (as ``tinynas sample`` writes) or a named baseline of :data:`BASELINES`.
They are enqueued once per study: the study records them in its user attr ``warm_start``, and a resumed
study (or a second worker) that finds it there enqueues nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

import optuna

from search_spaces.base import ArchSpec, SearchSpace
from tinynas.errors import ConfigError

WARM_START_ATTR = "warm_start"
# MobileNetV2's (Sandler et al., 2018) bottleneck depths for the stages of MCUNet's space (24, 32, 64, 96, 160 ch).
MOBILENETV2_DEPTHS = (2, 3, 4, 3, 3)

# A baseline's figures: (fits the budgets, MACs); baselines that scale pick the largest that fits.
Measure = Callable[[ArchSpec], tuple[bool, int]]


def _nearest(value, choices):
    return min(choices, key=lambda c: (abs(c - value), c))


def mobilenetv2(space: SearchSpace, measure: Measure) -> ArchSpec:
    """The largest-fitting scaled MobileNetV2 of an MCUNet-style space: MobileNetV2's stage depths (the
    nearest allowed), every block 3×3 with expand ratio 6 (the nearest allowed), at the (width, resolution)
    with the most MACs that fits the budgets."""
    if space.name != "mcunet":
        raise ConfigError(f"search.enqueue: baseline 'mobilenetv2' is defined for search_space=mcunet, "
                          f"not {space.name!r}; enqueue arch JSON files instead")
    n = len(space.stages)
    depths = tuple(_nearest(MOBILENETV2_DEPTHS[min(s, len(MOBILENETV2_DEPTHS) - 1)], space.depth_choices)
                   for s in range(n))
    k, e = _nearest(3, space.kernel_choices), _nearest(6, space.expand_choices)
    best, best_macs = None, -1
    for r in space.resolutions:
        for w in space.widths:
            arch = space.arch_class(resolution=r, width=w, depths=depths, kernels=tuple((k,) * d for d in depths),
                                   expands=tuple((e,) * d for d in depths))
            fits, macs = measure(arch)
            if fits and macs > best_macs:
                best, best_macs = arch, macs
    if best is None:
        raise ConfigError("search.enqueue: no width and resolution of the space makes the scaled MobileNetV2 "
                          "(3×3, expand 6) fit the budgets; drop the 'mobilenetv2' baseline or raise the budgets")
    return best


def smallest(space: SearchSpace, measure: Measure) -> ArchSpec:
    """The space's cheapest arch (every choice at its minimum)."""
    return space.smallest()


BASELINES: dict[str, Callable[[SearchSpace, Measure], ArchSpec]] = {"mobilenetv2": mobilenetv2,
                                                                     "smallest": smallest}


def resolve(entry: str, space: SearchSpace, measure: Measure) -> ArchSpec:
    """The arch an ``enqueue`` entry names: a baseline name or an arch JSON file of ``space``."""
    if entry in BASELINES:
        return BASELINES[entry](space, measure)
    path = Path(entry)
    if path.suffix != ".json":
        raise ConfigError(f"search.enqueue: {entry!r} is neither an arch JSON file nor a baseline; "
                          f"baselines: {', '.join(BASELINES)}")
    if not path.is_file():
        raise ConfigError(f"search.enqueue: {entry}: no such file")
    try:
        doc: Any = json.loads(path.read_text())
        return space.decode(doc)
    except (json.JSONDecodeError, ValueError, TypeError) as e:
        raise ConfigError(f"search.enqueue: {entry} is not an arch of search space {space.name!r} ({e})") from None


def enqueue_warm_start(study: optuna.Study, space: SearchSpace, entries: Iterable[str] | None,
                       measure: Measure) -> list[ArchSpec]:
    """Enqueue the archs ``entries`` name as the study's next trials, unless the study already had its warm
    start. Returns the archs enqueued (empty on resume)."""
    entries = list(entries or [])
    if not entries or WARM_START_ATTR in study.user_attrs:
        return []
    archs = [resolve(e, space, measure) for e in entries]  # every entry checked before any is enqueued
    for entry, arch in zip(entries, archs):
        study.enqueue_trial(space.params(arch), user_attrs={"warm_start": entry}, skip_if_exists=True)
    study.set_user_attr(WARM_START_ATTR, [{"entry": e, "arch_hash": a.hash} for e, a in zip(entries, archs)])
    return archs
