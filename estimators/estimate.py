"""The one front door: ``estimate(graph, mcu, runtime)`` → :class:`Estimate`."""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

from estimators.flash import FlashEstimate, estimate_flash
from estimators.ir import Graph
from estimators.latency import estimate_latency
from estimators.mcu import MCU
from estimators.patch import PatchConfig, patch_sram
from estimators.sram import RUNTIMES, SramEstimate, estimate_sram
from estimators.table import OpTable, table_of


@dataclasses.dataclass(frozen=True, init=False)
class LayerEstimate:
    name: str
    op: str
    output_shape: tuple[int, ...]
    macs: int
    params: int
    live_bytes: int
    latency_ms: float

    def __init__(self, name: str, op: str, output_shape: tuple[int, ...], macs: int, params: int, live_bytes: int,
                 latency_ms: float) -> None:
        # One per op of every estimate: fill the frozen instance's dict directly (no per-field __setattr__).
        fields = self.__dict__
        fields["name"] = name
        fields["op"] = op
        fields["output_shape"] = output_shape
        fields["macs"] = macs
        fields["params"] = params
        fields["live_bytes"] = live_bytes
        fields["latency_ms"] = latency_ms


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Everything the search needs to know about one model on one MCU and runtime."""

    model: str
    mcu: str
    runtime: str
    macs: int
    params: int
    sram: SramEstimate
    flash: FlashEstimate
    latency_ms: float
    energy_mj: float
    sram_budget_bytes: int
    flash_budget_bytes: int
    layers: Sequence[LayerEstimate]

    @property
    def fits(self) -> bool:
        return self.sram.total_bytes <= self.sram_budget_bytes and self.flash.total_bytes <= self.flash_budget_bytes

    def to_dict(self) -> dict:
        """The ``tinynas estimate format=json`` document."""
        return {
            "model": self.model, "mcu": self.mcu, "runtime": self.runtime,
            "macs": self.macs, "params": self.params,
            "sram": {"activation_bytes": self.sram.activation_bytes, "persistent_bytes": self.sram.persistent_bytes,
                     "total_bytes": self.sram.total_bytes, "budget_bytes": self.sram_budget_bytes},
            "flash": {"model_bytes": self.flash.model_bytes, "runtime_bytes": self.flash.runtime_bytes,
                      "total_bytes": self.flash.total_bytes, "budget_bytes": self.flash_budget_bytes},
            "latency_ms": self.latency_ms, "energy_mj": self.energy_mj, "fits": self.fits,
            "layers": [{"name": l.name, "op": l.op, "output_shape": list(l.output_shape), "macs": l.macs,
                        "params": l.params, "live_bytes": l.live_bytes, "latency_ms": l.latency_ms}
                       for l in self.layers],
        }


class Layers(Sequence[LayerEstimate]):
    """An estimate's per-op rows, written when first read (they name each op, which reads the graph's ops;
    search reads only the totals). A sequence, equal to any sequence with the same rows."""

    def __init__(self, graph: Graph, table: OpTable, live: Sequence[int], ms: Sequence[float]) -> None:
        self._source: tuple | None = (graph, table, live, ms)
        self._rows: tuple[LayerEstimate, ...] = ()

    def _get(self) -> tuple[LayerEstimate, ...]:
        if self._source is not None:
            graph, table, live, ms = self._source
            self._rows = tuple(LayerEstimate(op.name, f.kind, f.out_shape, f.macs, f.params, lb, t)
                               for op, f, lb, t in zip(graph.ops, table.ops, live, ms, strict=True))
            self._source = None
        return self._rows

    def __len__(self) -> int:
        return len(self._source[1].ops) if self._source is not None else len(self._rows)

    def __getitem__(self, i):
        return self._get()[i]

    def __iter__(self) -> Iterator[LayerEstimate]:
        return iter(self._get())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return self._get() == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Layers({list(self._get())!r})"


def estimate(graph: Graph, mcu: MCU, runtime: str = "tflm", patch: PatchConfig | None = None) -> Estimate:
    """Peak SRAM, flash, latency, energy, MACs and params of ``graph`` on ``mcu`` under ``runtime``
    (``patch``: MCUNetV2 patch-based inference of the first layers, SRAM only; see :mod:`estimators.patch`)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; allowed: {', '.join(RUNTIMES)}")
    table = table_of(graph)
    sram = patch_sram(graph, patch, runtime) if patch else estimate_sram(graph, runtime, mcu, table)
    flash = estimate_flash(graph, runtime, mcu, table)
    layer_ms = estimate_latency(graph, mcu, runtime, table)
    macs = params = 0
    for op in table.ops:
        macs += op.macs
        params += op.params
    latency_ms = float(sum(layer_ms))
    return Estimate(
        model=graph.name, mcu=mcu.name, runtime=runtime,
        macs=macs, params=params,
        sram=sram, flash=flash, latency_ms=latency_ms,
        energy_mj=latency_ms * mcu.active_power_mw / 1000.0,
        sram_budget_bytes=mcu.sram_bytes, flash_budget_bytes=mcu.flash_bytes,
        layers=Layers(graph, table, sram.live_bytes, layer_ms),
    )
