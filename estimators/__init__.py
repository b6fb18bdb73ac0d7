"""Analytical SRAM / flash / latency / energy estimators over a small graph IR (no PyTorch)."""

from estimators.estimate import Estimate, LayerEstimate, estimate
from estimators.ir import Graph, Op, Tensor
from estimators.mcu import MCU, catalogue, load_mcu

__all__ = ["Estimate", "LayerEstimate", "estimate", "Graph", "Op", "Tensor", "MCU", "catalogue", "load_mcu"]
