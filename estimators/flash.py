"""Flash (first version: constant bytes plus per-channel quantization parameters)."""

from __future__ import annotations

import dataclasses

from estimators.ir import Graph
from estimators.mcu import MCU


@dataclasses.dataclass(frozen=True)
class FlashEstimate:
    model_bytes: int
    runtime_bytes: int
    total_bytes: int


def estimate_flash(graph: Graph, runtime: str, mcu: MCU) -> FlashEstimate:
    model = sum(t.nbytes + 12 * t.quant_channels for t in graph.constants())
    return FlashEstimate(model, 0, model)
