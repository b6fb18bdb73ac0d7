"""The one front door: ``estimate(graph, mcu, runtime)`` → :class:`Estimate`."""

from __future__ import annotations

import dataclasses
import itertools
import operator
from typing import Sequence

from estimators.flash import FlashEstimate, estimate_flash
from estimators.ir import Graph, LazyTuple
from estimators.instructions import instruction_model_for
from estimators.latency import estimate_latency, instruction_cycles, op_cycles
from estimators.mcu import MCU
from estimators.op_support import check_supported
from estimators.patch import PatchConfig, patch_sram
from estimators.sram import RUNTIMES, SramEstimate, estimate_sram
from estimators.table import table_of


@dataclasses.dataclass(frozen=True, init=False)
class LayerEstimate:
    name: str
    op: str
    output_shape: tuple[int, ...]
    macs: int
    params: int
    live_bytes: int
    latency_ms: float
    instructions: int | None = None  # TFLM + CMSIS-NN, where the instruction model covers the core
    cycles: float | None = None  # instructions × the board's cycles per instruction (FC ops': × its ratio)

    def __init__(self, name: str, op: str, output_shape: tuple[int, ...], macs: int, params: int, live_bytes: int,
                 latency_ms: float, instructions: int | None = None, cycles: float | None = None) -> None:
        # One per op of every estimate: fill the frozen instance's dict directly (no per-field __setattr__).
        fields = self.__dict__
        fields["name"] = name
        fields["op"] = op
        fields["output_shape"] = output_shape
        fields["macs"] = macs
        fields["params"] = params
        fields["live_bytes"] = live_bytes
        fields["latency_ms"] = latency_ms
        fields["instructions"] = instructions
        fields["cycles"] = cycles


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
    instructions: int | None = None  # one Invoke under TFLM + CMSIS-NN (None: no model for this core/runtime)
    cycles: float | None = None  # instructions priced by the board (estimators.latency.instruction_cycles; None
    # without an instruction model or cycles_per_instruction)

    @property
    def fits(self) -> bool | None:
        """Within every budget the MCU has (a budget of 0 is none); None when it has no budget at all."""
        pairs = [(used, budget) for used, budget in ((self.sram.total_bytes, self.sram_budget_bytes),
                                                     (self.flash.total_bytes, self.flash_budget_bytes)) if budget > 0]
        return all(used <= budget for used, budget in pairs) if pairs else None

    @property
    def peak_layer(self) -> int | None:
        """Index of the layer with the most live bytes (the first of equals), None without layers."""
        live = [layer.live_bytes for layer in self.layers]
        return live.index(max(live)) if live else None

    def to_dict(self) -> dict:
        """The ``tinynas estimate format=json`` document."""
        return {
            "model": self.model, "mcu": self.mcu, "runtime": self.runtime,
            "macs": self.macs, "params": self.params,
            "sram": {"activation_bytes": self.sram.activation_bytes, "persistent_bytes": self.sram.persistent_bytes,
                     "total_bytes": self.sram.total_bytes, "budget_bytes": self.sram_budget_bytes},
            "flash": {"model_bytes": self.flash.model_bytes, "runtime_bytes": self.flash.runtime_bytes,
                      "total_bytes": self.flash.total_bytes, "budget_bytes": self.flash_budget_bytes,
                      "model_source": self.flash.model_source, "runtime_source": self.flash.runtime_source},
            "latency_ms": self.latency_ms, "energy_mj": self.energy_mj, "fits": self.fits,
            "instructions": _round(self.instructions), "cycles": _round(self.cycles),
            "layers": [{"name": l.name, "op": l.op, "output_shape": list(l.output_shape), "macs": l.macs,
                        "params": l.params, "live_bytes": l.live_bytes, "latency_ms": l.latency_ms,
                        "instructions": _round(l.instructions), "cycles": _round(l.cycles)}
                       for l in self.layers],
        }


_MACS, _PARAMS = operator.attrgetter("macs"), operator.attrgetter("params")  # of op runs
_NONE = itertools.repeat(None)


def _round(x: float | None) -> int | None:
    return None if x is None else int(round(x))


def estimate(graph: Graph, mcu: MCU, runtime: str = "tflm", patch: PatchConfig | None = None) -> Estimate:
    """Peak SRAM, flash, latency, energy, MACs and params of ``graph`` on ``mcu`` under ``runtime``
    (``patch``: MCUNetV2 patch-based inference of the first layers, SRAM only; see :mod:`estimators.patch`).
    A graph with an op the runtime does not model is refused (:class:`~estimators.op_support.UnsupportedOps`)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; allowed: {', '.join(RUNTIMES)}")
    table = table_of(graph)
    if patch:
        check_supported(graph, runtime, table)  # estimate_sram checks the other path
    sram = patch_sram(graph, patch, runtime) if patch else estimate_sram(graph, runtime, mcu, table)
    flash = estimate_flash(graph, runtime, mcu, table)
    model = instruction_model_for(mcu, runtime)
    instructions = model.graph_instructions(table) if model else None
    cpi = mcu.cycles_per_instruction
    priced = model is not None and cpi is not None and mcu.clock_mhz > 0
    if priced:  # per-layer figures only when the layers are read (a search reads the totals)
        cycles = instruction_cycles(model, table, mcu, instructions, runtime)
        to_ms = 1e-3 / mcu.clock_mhz
        latency_ms, layer_ms = cycles * to_ms, None
    else:
        cycles = None
        layer_ms = estimate_latency(graph, mcu, runtime, table)
        latency_ms = float(sum(layer_ms))

    def layers():
        instr = model.per_op(table) if model else None
        cyc = op_cycles(table, instr, mcu, runtime) if priced else None  # counted, but the board has no cycles per instruction
        ms = [c * to_ms for c in cyc] if priced else layer_ms
        return (LayerEstimate(op.name, f.kind, f.out_shape, f.macs, f.params, live, t, n, c)
                for op, f, live, t, n, c in zip(graph.ops, table.ops, sram.live_bytes, ms, instr or _NONE,
                                                cyc or _NONE, strict=priced))

    macs, params = sum(map(_MACS, table.runs)), sum(map(_PARAMS, table.runs))
    return Estimate(
        model=graph.name, mcu=mcu.name, runtime=runtime,
        macs=macs, params=params,
        sram=sram, flash=flash, latency_ms=latency_ms,
        energy_mj=latency_ms * mcu.active_power_mw / 1000.0,
        sram_budget_bytes=mcu.sram_bytes, flash_budget_bytes=mcu.flash_bytes,
        layers=LazyTuple(layers),
        instructions=instructions, cycles=cycles,
    )
