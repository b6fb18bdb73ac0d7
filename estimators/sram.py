"""Peak SRAM (first version: live activation bytes per op; the runtime-exact planners replace it)."""

from __future__ import annotations

import dataclasses

from estimators.ir import Graph
from estimators.mcu import MCU

RUNTIMES = ("tflm-reference", "tflm", "tinyengine", "analytic")


@dataclasses.dataclass(frozen=True)
class SramEstimate:
    activation_bytes: int
    persistent_bytes: int
    total_bytes: int
    live_bytes: tuple[int, ...]


def tensor_lifetimes(graph: Graph) -> dict[str, tuple[int, int]]:
    """First and last op index at which each activation tensor must be held."""
    first = {n: 0 for n in graph.inputs}
    last = dict(first)
    for i, op in enumerate(graph.ops):
        for n in op.outputs:
            first.setdefault(n, i)
            last[n] = max(last.get(n, i), i)
        for n in op.inputs:
            if not graph.tensors[n].const:
                last[n] = max(last.get(n, i), i)
    for n in graph.outputs:
        last[n] = len(graph.ops) - 1
    return {n: (first[n], last[n]) for n in first}


def estimate_sram(graph: Graph, runtime: str, mcu: MCU) -> SramEstimate:
    life = tensor_lifetimes(graph)
    live = tuple(
        sum(graph.tensors[n].nbytes for n, (a, b) in life.items() if a <= i <= b) for i in range(len(graph.ops))
    )
    peak = max(live, default=0)
    return SramEstimate(peak, 0, peak, live)
