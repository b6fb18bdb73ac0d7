"""Peak SRAM of a graph under one runtime.

``tflm-reference``  TFLite Micro, reference kernels (its Python interpreter): greedy-planned head with the
                    kernels' scratch buffers + persistent tail for ``mcu.pointer_bytes``.
``tflm``            TFLite Micro with CMSIS-NN kernels: as above with CMSIS-NN's scratch buffers for
                    ``mcu.kernel_isa``.
``tinyengine``      MCUNet's TinyEngine: in-place depthwise, fused residual add, first-fit arena,
                    im2col and kernel buffers; parameters stay in flash (no persistent SRAM counted).
``analytic``        MCUNet papers' accounting: peak of the activations alive at any op.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from estimators.ir import Graph
from estimators.mcu import MCU
from estimators.mcunet_memory import analytic_live, tinyengine_plan
from estimators.op_support import check_supported
from estimators.table import OpTable, table_of
from estimators.tflm_memory import (cmsis_nn_scratch, head_bytes_and_live, head_scratch, kernels_of,
                                    reference_scratch, scratch_count, tail_bytes_of)

RUNTIMES = ("tflm-reference", "tflm", "tinyengine", "analytic")


@dataclasses.dataclass(frozen=True)
class SramEstimate:
    """``activation_bytes`` (planned head / peak activations) + ``persistent_bytes`` = ``total_bytes``;
    ``live_bytes`` holds the bytes alive while each op runs (a tuple, or for TFLM one summed when first read)."""

    activation_bytes: int
    persistent_bytes: int
    total_bytes: int
    live_bytes: Sequence[int]


def _tflm(table: OpTable, mcu: MCU, scratch) -> SramEstimate:
    run_scratch = head_scratch(table, scratch)
    head, live = head_bytes_and_live(table, run_scratch)
    tail = tail_bytes_of(table, mcu.pointer_bytes, scratch_count(run_scratch), kernels_of(scratch), mcu.arm_eabi)
    return SramEstimate(head, tail, head + tail, live)


def estimate_sram(graph: Graph, runtime: str, mcu: MCU, table: OpTable | None = None) -> SramEstimate:
    """Peak SRAM of ``graph`` on ``mcu`` under ``runtime`` (one of :data:`RUNTIMES`); ``table``: the
    graph's :func:`~estimators.table.table_of`, when the caller has it. An op ``runtime`` does not model is
    refused (:class:`~estimators.op_support.UnsupportedOps`), never counted as zero."""
    if runtime in RUNTIMES:
        check_supported(graph, runtime, table)
    if runtime == "tflm-reference":
        return _tflm(table or table_of(graph), mcu, reference_scratch)
    if runtime == "tflm":
        return _tflm(table or table_of(graph), mcu, cmsis_nn_scratch(mcu.kernel_isa))
    if runtime == "tinyengine":
        peak, live = tinyengine_plan(graph)
        return SramEstimate(peak, 0, peak, live)
    if runtime == "analytic":
        live = analytic_live(graph)
        peak = max(live, default=0)
        return SramEstimate(peak, 0, peak, live)
    raise ValueError(f"unknown runtime {runtime!r}; allowed: {', '.join(RUNTIMES)}")
