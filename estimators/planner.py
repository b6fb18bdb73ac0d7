"""Arena planners over buffer lifetimes: TFLite Micro's greedy planner and a first-fit placer.

A :class:`Buffer` lives from step ``first`` to step ``last`` (inclusive); two buffers may share bytes
only when their lifetimes do not overlap. Both planners return one offset per buffer; the arena size
is the highest end offset (:func:`arena_size`).

The ``*_offsets`` and :func:`live_totals` functions do the same work on plain columns (sizes, firsts,
lasts) for callers that plan thousands of graphs and need no :class:`Buffer` objects. The ``*_offsets``
placers run compiled (``estimators/_planner.c``, built by ``pip install``) when that module is built and
``TINYNAS_PURE_PYTHON`` is unset; the pure-Python placers here are the reference and the fallback, and give
the same offsets (tests/test_planner_equivalence.py). :data:`PLACER` says which one runs.
"""

from __future__ import annotations

import dataclasses
import operator
import os
from itertools import accumulate
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


def _columns(buffers: Sequence[Buffer]) -> tuple[list[int], list[int], list[int]]:
    return [b.size for b in buffers], [b.first for b in buffers], [b.last for b in buffers]


def _placed_before(firsts: Sequence[int], lasts: Sequence[int], rank: Sequence[int]) -> list[list[int]]:
    """For each buffer, the buffers whose lifetimes overlap its own and that are placed before it (lower
    ``rank``), found by an interval sweep."""
    before: list[list[int]] = [[] for _ in firsts]
    live: list[int] = []  # started buffers that may still be alive
    for i in sorted(range(len(firsts)), key=firsts.__getitem__):
        start = firsts[i]
        ri, mine = rank[i], before[i]
        still = []
        for j in live:
            if lasts[j] >= start:  # first[j] <= start <= last[j]: they overlap
                still.append(j)
                if rank[j] < ri:
                    mine.append(j)
                else:
                    before[j].append(i)
        still.append(i)
        live = still
    return before


def _place(sizes: Sequence[int], firsts: Sequence[int], lasts: Sequence[int], order: Sequence[int]) -> list[int]:
    """Place buffers in ``order``; each goes into the lowest gap between already-placed, time-overlapping
    buffers (walked in offset order, ties in placement order) that is large enough.

    Only time-overlapping buffers can block a placement, so each buffer walks the overlapping buffers
    placed before it, sorted by (offset, placement rank), instead of every placed buffer."""
    n = len(sizes)
    rank = sorted(range(n), key=order.__getitem__)  # the inverse permutation: buffer → placement rank
    before = _placed_before(firsts, lasts, rank)
    offsets = [0] * n
    key = [0] * n  # offset · n + placement rank: sorts by offset, ties in placement order
    for r, i in enumerate(order):
        placed = before[i]
        if len(placed) > 1:
            placed.sort(key=key.__getitem__)
        want = sizes[i]
        candidate = 0
        for j in placed:
            o = offsets[j]
            if o - candidate >= want:
                break
            end = o + sizes[j]
            if end > candidate:
                candidate = end
        offsets[i] = candidate
        key[i] = candidate * n + r
    return offsets


def greedy_order(sizes: Sequence[int]) -> list[int]:
    """TFLite Micro's placement order: largest first, equal sizes in reverse order of addition."""
    return sorted(range(len(sizes) - 1, -1, -1), key=sizes.__getitem__, reverse=True)


def py_greedy_offsets(sizes: Sequence[int], firsts: Sequence[int], lasts: Sequence[int]) -> list[int]:
    """:func:`greedy_plan` on columns, in pure Python."""
    return _place(sizes, firsts, lasts, greedy_order(sizes))


def py_first_fit_offsets(sizes: Sequence[int], firsts: Sequence[int], lasts: Sequence[int]) -> list[int]:
    """:func:`first_fit_plan` on columns, in pure Python."""
    return _place(sizes, firsts, lasts, sorted(range(len(sizes)), key=sizes.__getitem__, reverse=True))


def py_greedy_arena(sizes: Sequence[int], firsts: Sequence[int], lasts: Sequence[int]) -> int:
    """The arena size of :func:`py_greedy_offsets`' plan (0 without buffers)."""
    return max(map(operator.add, py_greedy_offsets(sizes, firsts, lasts), sizes), default=0)


def _compiled():
    if os.environ.get("TINYNAS_PURE_PYTHON"):
        return None
    try:
        from estimators import _planner
    except ImportError:  # not built (no C compiler at install time): the pure-Python placers
        return None
    return _planner


_C = _compiled()
PLACER = "compiled" if _C else "python"  # which placer the ``*_offsets`` functions run


def _with_fallback(compiled, python):
    def offsets(sizes: Sequence[int], firsts: Sequence[int], lasts: Sequence[int]) -> list[int]:
        try:
            return compiled(sizes, firsts, lasts)
        except OverflowError:  # a value beyond 64 bits: only Python's ints hold it
            return python(sizes, firsts, lasts)
    return offsets


if _C is None:
    greedy_offsets, greedy_arena, first_fit_offsets = py_greedy_offsets, py_greedy_arena, py_first_fit_offsets
else:
    greedy_offsets = _with_fallback(_C.greedy_offsets, py_greedy_offsets)
    greedy_arena = _with_fallback(_C.greedy_arena, py_greedy_arena)
    first_fit_offsets = _with_fallback(_C.first_fit_offsets, py_first_fit_offsets)
greedy_offsets.__doc__ = ":func:`greedy_plan` on columns."
greedy_arena.__doc__ = "The arena size of :func:`greedy_offsets`' plan (0 without buffers)."
first_fit_offsets.__doc__ = ":func:`first_fit_plan` on columns."


def greedy_plan(buffers: Sequence[Buffer]) -> list[int]:
    """TFLite Micro's ``GreedyMemoryPlanner``: largest first, equal sizes in reverse order of addition."""
    return greedy_offsets(*_columns(buffers))


def first_fit_plan(buffers: Sequence[Buffer]) -> list[int]:
    """Largest-first first-fit (TinyEngine's placement): equal sizes in order of addition."""
    return first_fit_offsets(*_columns(buffers))


def live_totals(sizes: Sequence[int], firsts: Sequence[int], lasts: Sequence[int],
                steps: Sequence[float]) -> tuple[int, ...]:
    """:func:`live_bytes` on columns (integer lifetimes): a running sum of each size, added at its
    ``first`` step and removed after its ``last``; a step between integers sums its buffers directly."""
    if not sizes:
        return tuple(0 for _ in steps)
    lo, hi = min(firsts), max(lasts)
    delta = [0] * (hi - lo + 2)
    for size, first, last in zip(sizes, firsts, lasts):
        delta[first - lo] += size
        delta[last - lo + 1] -= size
    live = list(accumulate(delta))
    if type(steps) is range and steps.step == 1 and lo <= steps.start and steps.stop - 1 <= hi:
        return tuple(live[steps.start - lo:steps.stop - lo])  # every op's step, as the TFLM head asks
    out = []
    for s in steps:
        if not lo <= s <= hi:
            out.append(0)
        elif type(s) is int:
            out.append(live[s - lo])
        else:
            out.append(sum(size for size, first, last in zip(sizes, firsts, lasts) if first <= s <= last))
    return tuple(out)


def live_bytes(buffers: Sequence[Buffer], steps: Sequence[int]) -> tuple[int, ...]:
    """Sum of the sizes of the buffers alive at each of ``steps``."""
    return live_totals(*_columns(buffers), steps)
