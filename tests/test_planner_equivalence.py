"""The fast planners and SRAM paths against straightforward reference implementations of the same rules.

The references below are written from the rule, not from the fast code: TFLite Micro's greedy planner
(largest first; equal sizes: higher index first; each buffer at the lowest offset that does not overlap any
already-placed buffer whose lifetime overlaps), first fit (equal sizes in order of addition), live bytes
as a plain sum, and the tail as its allocations aligned end to end.
"""

from __future__ import annotations

import os
import random
import shutil
import sysconfig
from pathlib import Path

import pytest

from estimators import planner
from estimators.mcu import MCU
from estimators.planner import (Buffer, arena_size, first_fit_offsets, first_fit_plan, greedy_offsets, greedy_plan,
                                live_bytes, live_totals)
from estimators.sram import SramEstimate, estimate_sram
from estimators.tflm_memory import cmsis_nn_scratch, plan_head, reference_scratch, tail_allocations, tail_bytes
from search_spaces import get_space


def _reference_place(buffers: list[Buffer], order: list[int]) -> list[int]:
    """Try offsets from 0 upwards: the lowest one (0 or the end of a placed buffer) where buffer i fits
    without overlapping, in bytes, any placed buffer whose lifetime overlaps its own."""
    offsets: dict[int, int] = {}
    for i in order:
        b = buffers[i]
        blockers = [(offsets[j], offsets[j] + buffers[j].size) for j in offsets
                    if buffers[j].first <= b.last and b.first <= buffers[j].last]
        for start in sorted({0, *(end for _, end in blockers)}):
            if all(start + b.size <= lo or start >= hi for lo, hi in blockers):
                offsets[i] = start
                break
    return [offsets[i] for i in range(len(buffers))]


def reference_greedy(buffers: list[Buffer]) -> list[int]:
    return _reference_place(buffers, sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, -i)))


def reference_first_fit(buffers: list[Buffer]) -> list[int]:
    return _reference_place(buffers, sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, i)))


def random_buffers(rng: random.Random) -> list[Buffer]:
    n = rng.randint(0, 40)
    steps = rng.randint(1, 30)
    sizes = [16, 32, 48, 64, 100, 128, 1000] if rng.random() < 0.5 else list(range(1, 300))  # many ties, or few
    out = []
    for k in range(n):
        first = rng.randint(0, steps)
        last = min(steps, first + (rng.randint(0, 3) if rng.random() < 0.8 else rng.randint(0, steps)))
        out.append(Buffer(rng.choice(sizes), first, last, f"b{k}"))
    return out


@pytest.mark.parametrize("seed", range(300))
def test_planners_match_the_reference_rule(seed):
    bufs = random_buffers(random.Random(seed))
    assert greedy_plan(bufs) == reference_greedy(bufs)
    assert first_fit_plan(bufs) == reference_first_fit(bufs)
    columns = [b.size for b in bufs], [b.first for b in bufs], [b.last for b in bufs]
    assert greedy_offsets(*columns) == greedy_plan(bufs)
    assert first_fit_offsets(*columns) == first_fit_plan(bufs)
    steps = list(range(-1, 32)) + [2.5]
    expected = tuple(sum(b.size for b in bufs if b.first <= s <= b.last) for s in steps)
    assert live_bytes(bufs, steps) == expected == live_totals(*columns, steps)


try:
    from estimators import _planner as compiled_placer
except ImportError:
    compiled_placer = None

# Every placer the ``*_offsets`` functions can run: the pure-Python reference and, when built, the compiled one.
PLACERS = {"python": (planner.py_greedy_offsets, planner.py_first_fit_offsets, planner.py_greedy_arena)}
if compiled_placer is not None:
    PLACERS["compiled"] = (compiled_placer.greedy_offsets, compiled_placer.first_fit_offsets,
                           compiled_placer.greedy_arena)


@pytest.mark.parametrize("placer", sorted(PLACERS))
@pytest.mark.parametrize("seed", range(300))
def test_each_placer_matches_the_reference_rule(placer, seed):
    greedy, first_fit, greedy_arena = PLACERS[placer]
    bufs = random_buffers(random.Random(seed))
    columns = [b.size for b in bufs], [b.first for b in bufs], [b.last for b in bufs]
    assert greedy(*columns) == reference_greedy(bufs)
    assert first_fit(*columns) == reference_first_fit(bufs)
    assert greedy_arena(*columns) == arena_size(bufs, reference_greedy(bufs))


def test_compiled_placer_is_built_where_a_compiler_is():
    """``pip install`` builds estimators/_planner.c wherever a C compiler and Python's headers are; without
    them (or with TINYNAS_PURE_PYTHON set) the pure-Python placer runs, with the same offsets."""
    has_compiler = shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) or shutil.which("cc")
    if not has_compiler or not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        pytest.skip("no C compiler or Python headers here: the pure-Python placer runs")
    assert compiled_placer is not None, "estimators/_planner.c was not built: run `pip install -e .` (make venv)"
    assert planner.PLACER == ("python" if os.environ.get("TINYNAS_PURE_PYTHON") else "compiled")


@pytest.mark.skipif(compiled_placer is None, reason="the compiled placer is not built")
def test_compiled_placer_edge_cases():
    # Beyond 64 bits the compiled placer refuses and the wrapper falls back to Python's ints.
    big = [(1 << 61) + 1] * 3  # each fits 64 bits, their offsets would not: Python's ints
    assert greedy_offsets(big, [0] * 3, [1] * 3) == planner.py_greedy_offsets(big, [0] * 3, [1] * 3)
    with pytest.raises(OverflowError, match="add up"):
        compiled_placer.greedy_offsets(big, [0] * 3, [1] * 3)
    huge = [1 << 70, 1 << 70, 5]
    assert greedy_offsets(huge, [0, 0, 0], [1, 1, 1]) == planner.py_greedy_offsets(huge, [0, 0, 0], [1, 1, 1])
    with pytest.raises(OverflowError):
        compiled_placer.greedy_offsets(huge, [0, 0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="firsts: expected 2 values, got 1"):
        compiled_placer.greedy_offsets([1, 2], [0], [0, 0])
    with pytest.raises(TypeError):
        compiled_placer.first_fit_offsets([1, "a"], [0, 0], [0, 0])
    assert compiled_placer.greedy_offsets([], (), range(0)) == [] == compiled_placer.first_fit_offsets([], [], [])
    assert compiled_placer.greedy_arena([], [], []) == 0 == planner.py_greedy_arena([], [], [])
    assert planner.greedy_arena(huge, [0, 0, 0], [1, 1, 1]) == 2 * (1 << 70) + 5
    assert compiled_placer.greedy_offsets((16, 16), (0, 0), (1, 1)) == [16, 0]  # tuples too


def test_reference_rule_by_hand():
    # The reference itself against plans worked out by hand (test_sram's cases).
    assert reference_greedy([Buffer(100, 0, 1), Buffer(50, 1, 2), Buffer(100, 2, 3)]) == [0, 100, 0]
    assert reference_greedy([Buffer(32, 0, 1), Buffer(32, 0, 1)]) == [32, 0]
    assert reference_first_fit([Buffer(32, 0, 1), Buffer(32, 0, 1)]) == [0, 32]
    assert reference_greedy([Buffer(100, 0, 1), Buffer(90, 1, 2), Buffer(50, 2, 3), Buffer(40, 2, 2)]) == [0, 100, 0, 50]


HOST = MCU(name="host", board="x", core="x86_64", clock_mhz=0, sram_bytes=0, flash_bytes=0,
           active_power_mw=0, pointer_bytes=8)
M7 = MCU(name="m7", board="x", core="cortex-m7", clock_mhz=216, sram_bytes=1, flash_bytes=1,
         active_power_mw=1, pointer_bytes=4)
M85 = MCU(name="m85", board="x", core="cortex-m85", clock_mhz=480, sram_bytes=1, flash_bytes=1,
          active_power_mw=1, pointer_bytes=4)


@pytest.mark.parametrize("seed", range(6))
def test_tflm_sram_matches_plain_head_and_tail(seed):
    """estimate_sram's column path == the Buffer-level plan (reference greedy), plain live sums and the tail
    summed from tail_allocations, on random MCUNet graphs."""
    rng = random.Random(seed)
    space = get_space("mcunet", {"resolutions": [32, 48, 65], "widths": [0.3, 0.5, 0.75]})
    graph = space.to_ir(space.random(rng), rng.choice([1, 3]), 10)
    for mcu, runtime, scratch in ((HOST, "tflm-reference", reference_scratch), (M7, "tflm", cmsis_nn_scratch("dsp")),
                                  (M85, "tflm", cmsis_nn_scratch("mve"))):
        head = plan_head(graph, scratch)
        assert list(head.offsets) == reference_greedy(list(head.buffers))
        assert head.bytes == arena_size(head.buffers, head.offsets)
        used = 0
        for _, size, alignment in tail_allocations(graph, mcu.pointer_bytes, scratch, mcu.arm_eabi):
            used = -(-(used + size) // alignment) * alignment
        tail = used  # tail_allocations itemises the end's alignment too
        assert tail_bytes(graph, mcu.pointer_bytes, scratch, mcu.arm_eabi) == tail
        live = tuple(sum(b.size for b in head.buffers if b.first <= s <= b.last) for s in range(1, len(graph.ops) + 1))
        assert estimate_sram(graph, runtime, mcu) == SramEstimate(head.bytes, tail, head.bytes + tail, live)
