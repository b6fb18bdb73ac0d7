"""Does pricing each executed instruction by the Cortex-M4's documented timing explain more of a board's published
latencies than counting instructions? A check of one candidate for the latency model's next term.

    python benchmarks/core_cycles.py --results-repo PATH [--optimization=-O2]

For the published Cortex-M33 and Cortex-M4 setups (the v0.7 EK-RA6M4 run by its own runtime, built by
benchmarks/published_runtime.py from PATH, a checkout or git directory of mlcommons/tiny_results_v0.7; the
v0.5 STM32L4R5 and the RA6M4 again by the pinned runtime on the Keras-built MLPerf Tiny references), one Invoke
per model runs in the emulator with a plugin (benchmarks/core_cycles_plugin.c) that counts what executed by
mnemonic, and the counts are priced by the Cortex-M4 Technical Reference Manual's instruction timing (r0p1,
table 3-1; the M33 publishes none and shares the M4's three-stage pipeline): 1 cycle, loads and stores 2 (1 when
one follows another), LDRD/STRD 3, register lists 1 + N, divides 7 (2 to 12), taken branches P = 2 more (1 to 3),
IT folded (0). It prints each model's published cycles per instruction and per core cycle, and the one-point
calibration matrix's largest error (conv model to conv model, and over all four) for both.
--optimization rebuilds the RA6M4 runtime at another level (the project's Release configuration is -O2).
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # benchmarks/estimators.py would shadow the `estimators` package
sys.path += [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # tests/, the benchmarks

import argparse
import csv
import dataclasses
import itertools
import re
import subprocess
import tempfile

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCE = Path(__file__).with_name("core_cycles_plugin.c")
KEYS = {"kws": "mlperf_kws_dscnn", "vww": "mlperf_vww_mobilenetv1_0.25_96", "ic": "mlperf_ic_resnet8",
        "ad": "mlperf_ad_fc_autoencoder"}
PINNED_BOARDS = ("stm32l4r5", "ra6m4")

# Cortex-M4 TRM r0p1, table 3-1 (cycles; P, the pipeline refill of a taken branch, is 1 to 3: 2 taken)
BRANCH_REFILL = 2
LIST_OPS = {"push", "pop", "ldm", "ldmia", "ldmdb", "stm", "stmia", "stmdb", "vpush", "vpop", "vldm", "vldmia",
            "vstm", "vstmia", "vstmdb"}


def instruction_cycles(key: str) -> int:
    """Cycles of one executed instruction of plugin key ``key`` (mnemonic + hints), without the branch refill."""
    mnemonic = re.sub(r"\.(w|n)$", "", re.split(r"[+#@]", key)[0])
    pipelined = key.endswith("+pipe")
    if mnemonic in LIST_OPS:
        return 1 + int(re.search(r"#(\d+)", key).group(1))
    if mnemonic in ("ldrd", "strd"):
        return 3
    if mnemonic.startswith(("ld", "str")) or mnemonic in ("vldr", "vstr"):
        return 1 if pipelined else 2
    if mnemonic in ("sdiv", "udiv"):
        return 7
    if mnemonic.startswith("it") and len(mnemonic) <= 4:
        return 0
    if mnemonic in ("vdiv.f32", "vsqrt.f32"):
        return 14
    return 1


def executed(elf: Path, board: str) -> dict[str, int]:
    """Per plugin key, what one Invoke of ``elf`` executed on QEMU machine ``board``."""
    from tinynas.target.emulate import marker_addresses, plugin, qemu_command
    from tinynas.target.sources import cache_dir

    begin, end = marker_addresses(elf)[:2]
    with tempfile.TemporaryDirectory(prefix="tinynas-cycles-") as tmp:
        log = Path(tmp) / "keys.txt"
        command = qemu_command(elf, board, plugin(cache_dir(), PLUGIN_SOURCE), f"out={log},marks={begin:x}:{end:x}")
        subprocess.run(command, capture_output=True, timeout=1800, cwd=tmp, check=True)
        snaps = {}
        for line in log.read_text().splitlines():
            fields = line.split()
            snaps.setdefault(int(fields[1]), dict((k, int(v)) for k, v in (f.split("=") for f in fields[2:])))
    return {k: v - snaps[0].get(k, 0) for k, v in snaps[1].items() if v - snaps[0].get(k, 0)}


def totals(counts: dict[str, int]) -> tuple[int, int]:
    """(instructions, core cycles) of plugin counts."""
    n = sum(v for k, v in counts.items() if k != "taken")
    return n, sum(instruction_cycles(k) * v for k, v in counts.items() if k != "taken") + \
        BRANCH_REFILL * counts.get("taken", 0)


def published_cycles() -> dict[tuple[str, str], float]:
    with open(ROOT / "estimators" / "data" / "latency_calibration.csv") as f:
        return {(r["mcu"], r["model"]): float(r["latency_ms"]) * float(r["clock_mhz"]) * 1e3
                for r in csv.DictReader(f) if r["runtime"] == "tflm"}


def pinned_elfs(board: str) -> dict[str, tuple[Path, str]]:
    """The pinned runtime's firmware of the Keras-built MLPerf Tiny references for ``board``'s core."""
    from instruction_model import sources
    from tests.tflite_models import build_mlperf_tiny
    from estimators import load_mcu
    from tinynas.paths import MCU_DIR
    from tinynas.target.build import core_for
    from tinynas.target.firmware import arena_for, build_firmware, test_input
    from tinynas.export.verify import io_specs

    mcu = load_mcu(board, MCU_DIR)
    src, out = sources(), {}
    for name, tflite in build_mlperf_tiny(Path(tempfile.gettempdir()) / "tinynas-mlperf-tiny").items():
        x = test_input(io_specs(tflite)[0].shape[1:])
        elf, _ = build_firmware(src, mcu.core, tflite, arena_for(tflite, None), x)
        out[KEYS[name]] = (elf, core_for(mcu.core).board)
    return out


def own_elfs(repo: Path, optimization: str | None) -> dict[str, tuple[Path, str]]:
    """The v0.7 RA6M4 submission's own runtime, one firmware per model (benchmarks/published_runtime.py)."""
    from published_runtime import SETUPS, count
    from tinynas.target.build import core_for
    from estimators.mcu import load_mcu

    setup = SETUPS["ra6m4"]
    if optimization:
        setup = dataclasses.replace(setup, optimization=optimization)
    board = core_for(load_mcu(setup.mcu, ROOT / "conf" / "mcu").core).board
    return {row["model"]: (row["elf"], board) for row in count(repo, setup)}


def report(label: str, board: str, elfs: dict[str, tuple[Path, str]], published: dict) -> None:
    rows = {}
    for model, (elf, machine) in elfs.items():
        n, cycles = totals(executed(Path(elf), machine))
        rows[model] = (n, cycles, published[(board, model)])
    print(f"\n{label}")
    print(f"  {'model':32s} {'instructions':>13s} {'core cycles':>12s} {'cyc/instr':>9s} {'cyc/core cyc':>12s}")
    for model, (n, cycles, measured) in rows.items():
        print(f"  {model:32s} {n:13,d} {cycles:12,d} {measured / n:9.3f} {measured / cycles:12.3f}")
    conv = [m for m in rows if m != "mlperf_ad_fc_autoencoder"]
    for name, col in (("instructions", 0), ("core cycles", 1)):
        def worst(models):
            return max(abs(rows[b][2] / rows[b][col] * rows[a][col] / rows[a][2] - 1)
                       for a, b in itertools.permutations(models, 2))
        print(f"  one-point calibration on {name:12s}: conv model to conv model max {worst(conv):.1%}, "
              f"all four max {worst(list(rows)):.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results-repo", type=Path, required=True,
                    help="checkout (or git directory) of mlcommons/tiny_results_v0.7")
    ap.add_argument("--optimization", help="rebuild the RA6M4 runtime at this level (e.g. -O2, its Release)")
    args = ap.parse_args()
    published = published_cycles()
    report(f"ra6m4, its own runtime ({args.optimization or 'the Debug configuration, -O3'})", "ra6m4",
           own_elfs(args.results_repo, args.optimization), published)
    for board in PINNED_BOARDS:
        report(f"{board}, the pinned runtime", board, pinned_elfs(board), published)


if __name__ == "__main__":
    main()
