"""Arena planners over buffer lifetimes: TFLite Micro's greedy planner and a first-fit placer.

A :class:`Buffer` lives from step ``first`` to step ``last`` (inclusive); two buffers may share bytes
only when their lifetimes do not overlap. Both planners return one offset per buffer; the arena size
is the highest end offset (:func:`arena_size`).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence


@dataclasses.dataclass(frozen=True)
class Buffer:
    """``size`` bytes needed from step ``first`` to step ``last``; ``name`` is for reports only."""

    size: int
    first: int
    last: int
    name: str = ""

    def __post_init__(self) -> None:
        if self.size < 0 or self.first > self.last:
            raise ValueError(f"buffer {self.name!r}: need size >= 0 and first <= last, got "
                             f"size={self.size}, first={self.first}, last={self.last}")

    def overlaps(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


def align_up(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def arena_size(buffers: Sequence[Buffer], offsets: Sequence[int]) -> int:
    return max((o + b.size for b, o in zip(buffers, offsets)), default=0)


def _place(buffers: Sequence[Buffer], order: Sequence[int]) -> list[int]:
    """Place buffers in ``order``; each goes into the lowest gap between already-placed, time-overlapping
    buffers (walked in offset order, ties in placement order) that is large enough."""
    offsets = [-1] * len(buffers)
    placed: list[int] = []  # buffer ids sorted by offset; equal offsets keep placement order
    for i in order:
        want = buffers[i]
        candidate = 0
        for j in placed:
            other = buffers[j]
            if not other.overlaps(want):
                continue
            if offsets[j] - candidate >= want.size:
                break
            candidate = max(candidate, offsets[j] + other.size)
        offsets[i] = candidate
        pos = len(placed)
        while pos > 0 and offsets[placed[pos - 1]] > candidate:
            pos -= 1
        placed.insert(pos, i)
    return offsets


def greedy_plan(buffers: Sequence[Buffer]) -> list[int]:
    """TFLite Micro's ``GreedyMemoryPlanner``: largest first, equal sizes in reverse order of addition."""
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, -i))
    return _place(buffers, order)


def first_fit_plan(buffers: Sequence[Buffer]) -> list[int]:
    """Largest-first first-fit (TinyEngine's placement): equal sizes in order of addition."""
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, i))
    return _place(buffers, order)


def live_bytes(buffers: Sequence[Buffer], steps: Sequence[int]) -> tuple[int, ...]:
    """Sum of the sizes of the buffers alive at each of ``steps``."""
    return tuple(sum(b.size for b in buffers if b.first <= s <= b.last) for s in steps)
