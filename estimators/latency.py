"""Latency (first version: a fixed cycles-per-MAC figure; the calibrated per-layer model replaces it)."""

from __future__ import annotations

from estimators.ir import Graph
from estimators.macs import op_macs
from estimators.mcu import MCU


def estimate_latency(graph: Graph, mcu: MCU, runtime: str) -> list[float]:
    """Milliseconds per op, in graph order."""
    clock_hz = max(mcu.clock_mhz, 1.0) * 1e6
    return [op_macs(graph, op) * 4.0 / clock_hz * 1e3 for op in graph.ops]
