"""benchmarks/core_cycles.py: the Cortex-M4 timing table it prices executed instructions by, and its plugin's
per-instruction counts against the exact executed count of `tinynas firmware`'s plugin."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def core_cycles():
    spec = importlib.util.spec_from_file_location("core_cycles", ROOT / "benchmarks" / "core_cycles.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("key, cycles", [
    ("smlad", 1), ("add.w", 1), ("ldr", 2), ("ldr.w+pipe", 1), ("str+pipe", 1), ("ldrd", 3),
    ("push.w#8", 9), ("pop#4pc", 5), ("vpush#2", 3), ("itt", 0), ("sdiv", 7), ("ldr@pc", 2)])
def test_timing_table_of_the_cortex_m4_trm(core_cycles, key, cycles):
    assert core_cycles.instruction_cycles(key) == cycles


def test_totals_add_the_branch_refill(core_cycles):
    n, cycles = core_cycles.totals({"ldr": 10, "ldr+pipe": 10, "push#3": 2, "taken": 5})
    assert n == 22 and cycles == 10 * 2 + 10 * 1 + 2 * 4 + 5 * core_cycles.BRANCH_REFILL


@pytest.mark.slow
def test_plugin_counts_every_executed_instruction(core_cycles, firmware_report, mlperf_tiny):
    """The per-mnemonic counts of one Invoke add up to the instructions insn_count.c counts for the same ELF."""
    report = firmware_report(mlperf_tiny["kws"])
    counts = core_cycles.executed(Path(report["elf"]), report["emulator"].split()[2])
    n, cycles = core_cycles.totals(counts)
    assert n == report["instructions"]
    assert counts["taken"] > 0 and n < cycles < 3 * n
    assert any(k.startswith("smlad") for k in counts)  # CMSIS-NN's DSP kernels ran
