"""SRAM estimators against hand-checkable plans and against TFLite Micro's own arena (ground truth)."""

from __future__ import annotations

from pathlib import Path

import pytest

from estimators.builder import GraphWriter
from estimators.ir import Graph
from estimators.mcu import MCU
from estimators.planner import Buffer, arena_size, first_fit_plan, greedy_plan
from estimators.sram import RUNTIMES, estimate_sram
from estimators.table import op_facts
from estimators.tflm_memory import cmsis_nn_scratch, head_buffers, tail_allocations

HOST = MCU(name="host", board="x", core="x86_64", clock_mhz=0, sram_bytes=0, flash_bytes=0,
           active_power_mw=0, pointer_bytes=8)


def mcu(core: str, pointer_bytes: int = 4) -> MCU:
    return MCU(name=core, board="x", core=core, clock_mhz=100, sram_bytes=1, flash_bytes=1,
               active_power_mw=1, pointer_bytes=pointer_bytes)


# -- planner rules, by hand --------------------------------------------------------------------------
def test_greedy_places_largest_first_in_lowest_gap():
    # a [0,1] 100 B, b [1,2] 50 B, c [2,3] 100 B: a at 0; c overlaps neither a → 0; b overlaps both → 100.
    bufs = [Buffer(100, 0, 1), Buffer(50, 1, 2), Buffer(100, 2, 3)]
    assert greedy_plan(bufs) == [0, 100, 0]
    assert arena_size(bufs, greedy_plan(bufs)) == 150


def test_greedy_equal_sizes_later_buffer_first_and_fills_gaps():
    # Two equal buffers alive together: the one added later is placed first (offset 0).
    assert greedy_plan([Buffer(32, 0, 1), Buffer(32, 0, 1)]) == [32, 0]
    # First fit keeps the order of addition instead.
    assert first_fit_plan([Buffer(32, 0, 1), Buffer(32, 0, 1)]) == [0, 32]
    # A small buffer drops into the lowest gap between time-overlapping placed buffers:
    # P at 0, Q after P, R below Q (P is dead by then), T into the 50 B gap between R and Q.
    bufs = [Buffer(100, 0, 1), Buffer(90, 1, 2), Buffer(50, 2, 3), Buffer(40, 2, 2)]
    assert greedy_plan(bufs) == [0, 100, 0, 50]
    assert arena_size(bufs, greedy_plan(bufs)) == 190


def _chain() -> Graph:
    g = GraphWriter("chain", (8, 8, 3))
    x = g.conv2d(g.graph.inputs[0], 8, 3, 2, activation="relu6")   # 4×4×8 = 128 B
    x = g.depthwise_conv2d(x, 3, activation="relu6")                # 128 B
    x = g.global_avg_pool(x)                                        # 8 B
    x = g.flatten(x)
    x = g.fully_connected(x, 4)
    return g.finish(x)


def test_tflm_lifetimes_and_alignment():
    g = _chain()
    bufs = {b.name: b for b in head_buffers(g)}
    assert bufs["input"] == Buffer(192, 0, 1, "input")               # 8·8·3 = 192, graph input from step 0
    assert bufs["conv/out"] == Buffer(128, 1, 2, "conv/out")
    assert bufs["pool/out"].size == 16 and (bufs["pool/out"].first, bufs["pool/out"].last) == (3, 4)
    assert bufs["fc/out"] == Buffer(16, 5, 5, "fc/out")               # graph output to the last step
    # MEAN's three int8 scratch buffers (accumulators, input iterator, axes) live only at its step;
    scratch = [b for b in bufs.values() if "scratch" in b.name]
    assert [(b.size, b.first, b.last) for b in scratch] == [(32, 3, 3), (16, 3, 3), (16, 3, 3)]  # 8 int32 sums


def test_cmsis_scratch_rules():
    g = _chain()
    conv, dw = g.ops[0], g.ops[1]
    assert cmsis_nn_scratch("dsp")(op_facts(g, conv)) == [2 * 28 * 2]             # 2 × align4(3·3·3) × 2 B
    assert cmsis_nn_scratch("mve")(op_facts(g, conv)) == [4 * 32]                  # 4 × ceil16(27)
    assert cmsis_nn_scratch("dsp")(op_facts(g, dw)) == []                         # 3×3 fast path
    assert cmsis_nn_scratch("generic")(op_facts(g, dw)) == []                     # no DSP: none at all
    assert cmsis_nn_scratch("mve")(op_facts(g, dw)) == [4 * 124 * 9]              # 4 windows of a 124-channel block
    assert cmsis_nn_scratch("mve")(op_facts(g, g.ops[-1])) == []                   # int8 FC: kernel sums in the tail
    assert estimate_sram(g, "tflm", mcu("cortex-m4")).activation_bytes >= \
        estimate_sram(g, "tflm-reference", mcu("cortex-m4")).activation_bytes
    # the MVE FC keeps Cout int32 kernel sums in the tail (4 outputs: 16 B); DSP builds keep none
    tails = {isa: [(name, size) for name, size, _ in tail_allocations(g, 4, cmsis_nn_scratch(isa))]
             for isa in ("dsp", "mve")}
    assert [t for t in tails["mve"] if "kernel sum" in t[0]] == [(f"{g.ops[-1].name} kernel sum 0", 16)]
    assert not [t for t in tails["dsp"] if "kernel sum" in t[0]]


def test_analytic_and_tinyengine_on_a_residual_block():
    g = GraphWriter("res", (4, 4, 8))
    x0 = g.graph.inputs[0]                                           # 128 B
    y = g.conv2d(x0, 16, 1, name="expand")                           # 256 B
    y = g.depthwise_conv2d(y, 3, name="dw")                          # 256 B, in place in TinyEngine
    y = g.conv2d(y, 8, 1, name="project")                            # 128 B
    y = g.add(y, x0)                                                 # fused into project
    graph = g.finish(y)
    analytic = estimate_sram(graph, "analytic", HOST)
    # dw step: its input, its output and the held shortcut input: 256 + 256 + 128.
    assert analytic.live_bytes[1] == 640 and analytic.total_bytes == 640
    te = estimate_sram(graph, "tinyengine", HOST)
    # In place: dw shares the expand buffer; arena 128 + 256 + 128 = 512, plus only the largest scratch
    # buffer of any op: the in-place depthwise's int16 padded channel 2·(4+2)·(4+2) = 72, above the
    # im2col's two int16 columns of project's 16 input channels = 64.
    assert te.activation_bytes == 512 + 72
    assert te.persistent_bytes == 0


def test_tail_grows_with_pointer_width():
    g = _chain()
    assert estimate_sram(g, "tflm-reference", HOST).persistent_bytes > \
        estimate_sram(g, "tflm-reference", mcu("cortex-m4", 4)).persistent_bytes


def test_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="allowed: tflm-reference"):
        estimate_sram(_chain(), "tvm", HOST)
    assert set(RUNTIMES) == {"tflm-reference", "tflm", "tinyengine", "analytic"}


# -- against TFLite Micro's interpreter --------------------------------------------------------------
@pytest.fixture(scope="session")
def mlperf_tiny(tmp_path_factory) -> dict[str, Path]:
    from tests.tflite_models import build_mlperf_tiny

    return build_mlperf_tiny(tmp_path_factory.mktemp("mlperf_tiny"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kws", "vww", "ic", "ad"])
def test_tflm_reference_matches_interpreter_on_mlperf_tiny(mlperf_tiny, name):
    from estimators.tflite_reader import read_tflite
    from tinynas.tflm import measure_arena

    path = mlperf_tiny[name]
    measured = measure_arena(path)
    est = estimate_sram(read_tflite(path), "tflm-reference", HOST)
    assert est.activation_bytes == measured.head_bytes
    assert abs(est.total_bytes - measured.total_bytes) <= 0.02 * measured.total_bytes


def test_vww_head_is_the_published_greedy_figure(mlperf_tiny):
    """NOTES.md: the MLPerf Tiny VWW greedy head is 73,728 B against a 55,296 B ideal."""
    from estimators.tflite_reader import read_tflite

    est = estimate_sram(read_tflite(mlperf_tiny["vww"]), "tflm-reference", HOST)
    assert est.activation_bytes == 73_728
    assert max(est.live_bytes) == 55_296


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_to_ir_matches_exported_mcunet_arena(tmp_path, seed):
    """A random MCUNet arch exported with our pipeline: to_ir's estimate hits TFLM's head exactly."""
    import random

    import numpy as np
    import torch

    from search_spaces import get_space
    from tinynas.export import export_model

    space = get_space("mcunet", {"resolutions": [32, 40, 48], "widths": [0.3, 0.5]})
    arch = space.random(random.Random(seed))
    torch.manual_seed(seed)
    model = space.build_torch(arch, 1, 10)
    torch.nn.init.normal_(model.classifier.bias)  # a trained classifier has a bias (a zero one is dropped)
    calib = np.random.default_rng(seed).standard_normal((16, 1, arch.resolution, arch.resolution))
    result = export_model(model, calib.astype(np.float32), tmp_path / "export")
    est = estimate_sram(space.to_ir(arch, 1, 10), "tflm-reference", HOST)
    assert est.activation_bytes == result.arena.head_bytes
    assert abs(est.total_bytes - result.arena.total_bytes) <= 0.02 * result.arena.total_bytes
