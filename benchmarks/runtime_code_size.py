"""Measure the flash taken by TFLite Micro + CMSIS-NN code per op kind in linked firmware; write runtime_code_size.yaml.

    python benchmarks/runtime_code_size.py            # link, measure, check on op sets of real models, print
    python benchmarks/runtime_code_size.py --write    # ... and write estimators/data/runtime_code_size.yaml
    python benchmarks/runtime_code_size.py --cores cortex-m4   # only some of the cores tinynas.target builds
    python benchmarks/runtime_code_size.py --models WORK_DIR   # the shipped data vs real models' firmware

For every core :mod:`tinynas.target.build` supports, it links the firmware (``tinynas.target.firmware``: TFLM's
own Makefile, ``BUILD_TYPE=release_with_logs``, ``-Os``, ``--gc-sections``) of one small model (TFLM's
hello_world) registering no op, then each op kind the estimators model alone. The linker map attributes every
byte of the flash image (text + rodata + data) to the model, the test harness or the runtime
(:mod:`tinynas.target.linkmap`). Runtime input sections that the no-op build holds are the ``base`` (the
interpreter, allocator, planner, flatbuffer parsing, error strings and the C library they reach). Every other
section is grouped by the set of op kinds whose build links it: a group of one op is that op's own code, a
group of several is code they share (CMSIS-NN's matrix products, soft-float helpers, ``expf``). Since the
linker keeps what any registered kernel reaches, the runtime of a set of ops is the base plus every group that
holds one of them. Op sets of real models (MLPerf Tiny, the search spaces, all ops at once) are then linked to
check that sum against the measured runtime bytes. Needs the TFLM tree ($TINYNAS_TFLM_ROOT, else
../shared/third_party) and the Arm toolchain; new kernel files compile on first use (minutes).
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/estimators.py would shadow the `estimators` package: keep this script's folder off the path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import datetime
import importlib.util
import time

import yaml

from estimators.flash import RUNTIME_CODE
from estimators.op_support import SUPPORTED_OPS

ROOT = Path(__file__).resolve().parents[1]
HELLO_WORLD = "tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite"
ARENA_BYTES = 16 << 10
# Op sets of real models (tinynas firmware on the MLPerf Tiny references and exported archs), checked against
# base + groups; the last is every op kind at once.
CHECK_SETS = {
    "MLPerf KWS / VWW": ["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"],
    "MLPerf IC": ["CONV_2D", "ADD", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"],
    "MLPerf AD": ["FULLY_CONNECTED"],
    "mcunet": ["PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED"],
    "mobilenetv3": ["PAD", "CONV_2D", "HARD_SWISH", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "MUL", "FULLY_CONNECTED"],
    "LSTM": ["UNIDIRECTIONAL_SEQUENCE_LSTM", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"],
}


def op_kinds() -> list[str]:
    """The op kinds the estimators model for TFLite Micro (runtime=tflm-reference's set, the widest)."""
    return sorted(SUPPORTED_OPS["tflm-reference"])


def target_cores() -> dict[str, str]:
    """TFLM TARGET_ARCH → a core name tinynas.target builds it for (every core it supports)."""
    from tinynas.target.build import CORES

    out: dict[str, str] = {}
    for name, core in CORES.items():
        out.setdefault(core.target_arch, name)
    return out


def _instruction_bench():
    spec = importlib.util.spec_from_file_location("instruction_model_bench", ROOT / "benchmarks" / "instruction_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def link(src, core: str, ops: list[str]) -> Path:
    """The ELF of hello_world's firmware for ``core`` with ``ops`` registered (cached by tinynas.target)."""
    from tinynas.export.verify import io_specs
    from tinynas.target.firmware import build_firmware, test_input

    model = src.root / HELLO_WORLD
    x = test_input(io_specs(model)[0].shape[1:])
    return build_firmware(src, core, model, ARENA_BYTES, x, ops=ops)[0]


def measure(elf: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(flash image by kind, the runtime's input sections by key) of a linked firmware."""
    from tinynas.target.linkmap import flash_breakdown, read_map, runtime_sections

    return flash_breakdown(elf), runtime_sections(read_map(elf.with_name("firmware.map")))


def runtime_bytes(breakdown: dict[str, int]) -> int:
    """What a user's firmware also holds: the flash image less the model and the test harness."""
    return breakdown["runtime"] + breakdown["other"]


def measure_core(src, arch: str, core: str, ops: list[str]) -> dict:
    t0 = time.monotonic()
    base_breakdown, base = measure(link(src, core, []))
    solo: dict[str, dict[str, int]] = {}
    for op in ops:
        solo[op] = measure(link(src, core, [op]))[1]
        print(f"{arch} {op}: {sum(v for k, v in solo[op].items() if k not in base):,} B beyond the base "
              f"({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
    groups: dict[tuple[str, ...], int] = {}
    sizes: dict[str, set[int]] = {}
    for op, sections in solo.items():
        for key, size in sections.items():
            sizes.setdefault(key, set()).add(size)
    for key in sizes:
        if key in base:
            continue
        owners = tuple(sorted(op for op in ops if key in solo[op]))
        groups[owners] = groups.get(owners, 0) + max(sizes[key])
    varying = [k for k, v in sizes.items() if len(v) > 1]
    if varying:
        print(f"{arch}: {len(varying)} sections differ in size between builds (largest taken): {varying[:3]}",
              file=sys.stderr)
    return {"core": core, "ops": list(ops), "base_bytes": runtime_bytes(base_breakdown), "harness_bytes": base_breakdown["harness"],
            "groups": [{"ops": list(k), "bytes": v} for k, v in sorted(groups.items(), key=lambda kv: (len(kv[0]), kv[0]))]}


def predicted(entry: dict, ops: list[str]) -> int:
    """Base + every group that holds one of ``ops`` (what estimators.flash computes from the YAML)."""
    return entry["base_bytes"] + sum(g["bytes"] for g in entry["groups"] if set(g["ops"]) & set(ops))


def check(src, arch: str, entry: dict, sets: dict[str, list[str]]) -> list[dict]:
    rows = []
    for name, ops in sets.items():
        breakdown, _ = measure(link(src, entry["core"], ops))
        real, est = runtime_bytes(breakdown), predicted(entry, ops)
        rows.append({"op_set": name, "ops": len(ops), "measured": real, "estimated": est,
                     "error": round((est - real) / real, 5), "harness": breakdown["harness"]})
        print(f"{arch} {name:>18}: runtime {real:>8,} B measured, {est:>8,} estimated ({(est - real) / real:+.2%}); "
              f"harness {breakdown['harness']:,} B", flush=True)
    return rows


def provenance(src, arch: str, core: str) -> dict:
    from tinynas.target.build import BUILD_TYPE, Tree, core_for

    common = _instruction_bench().provenance(src)
    flags = Tree(src, core_for(core)).flags()
    return {"tflm_commit": common["tflm_commit"], "cmsis_nn_commit": common["cmsis_nn_commit"],
            "compiler": common["compiler"],
            "build": f"TARGET=cortex_m_qemu TARGET_ARCH={arch} OPTIMIZED_KERNEL_DIR=cmsis_nn BUILD_TYPE={BUILD_TYPE}",
            "cxxflags": " ".join(flags.cxxflags), "ldflags": " ".join(flags.ldflags)}


def write(cores: dict[str, dict], path: Path = RUNTIME_CODE) -> None:
    old = yaml.safe_load(path.read_text()) if path.is_file() else {}
    kept = {k: v for k, v in old.get("runtimes", {}).get("tflm", {}).get("cores", {}).items() if k not in cores}
    doc = {
        "generated_by": "benchmarks/runtime_code_size.py --write",
        "generated_on": datetime.date.today().isoformat(),
        "counted": (
            "Flash image (text + rodata + data) of firmware linked by tinynas.target, less the model (model_data.o) "
            "and the test harness (runner, test input, vector table, crt0 and semihosting, TFLM's Recording* "
            "allocator, and the C library members only those reach: printf, exit, ...). Counted: TFLM's "
            "interpreter, allocator, planner and kernels, CMSIS-NN, and the libgcc / libm / libc / libstdc++ code "
            "they reach (soft float, expf/logf, memcpy, vsnprintf behind TFLM's DebugLog, malloc behind newlib's "
            "formatting). Not counted: a user's own main, start-up code and console driver."),
        "runtimes": {
            "tflm": {
                "source": "measured: linker maps of firmware built by tinynas.target (see each core's build)",
                "cores": {**kept, **cores},
                # A core without a build of its own borrows one of its CMSIS-NN class (estimators.flash says so).
                "borrow": {"dsp": "cortex-m4", "mve": "cortex-m55", "generic": "cortex-m0plus", "other": "cortex-m4"},
            },
            **{k: v for k, v in old.get("runtimes", {}).items() if k != "tflm"},
        },
    }
    path.write_text("# Generated by benchmarks/runtime_code_size.py --write; do not edit the tflm entry by hand.\n"
                    + yaml.safe_dump(doc, sort_keys=False, width=120, default_flow_style=None))
    print(f"wrote {path}", file=sys.stderr)


def compare_models(work: Path, mcu_name: str) -> None:
    """Flash estimate vs linked firmware for the MLPerf Tiny references and a held-out export of every space
    (the models of tests/test_runtime_code.py)."""
    from estimators import estimate, load_mcu
    from estimators.flash import runtime_code
    from estimators.tflite_reader import read_tflite
    from tinynas.paths import MCU_DIR
    from tinynas.target.firmware import run_firmware
    from tinynas.target.linkmap import flash_breakdown

    sys.path.insert(0, str(ROOT))
    from tests.tflite_models import build_mlperf_tiny

    bench, mcu = _instruction_bench(), load_mcu(mcu_name, MCU_DIR)
    src = bench.sources()
    models = [(f"MLPerf {k}", v, None) for k, v in build_mlperf_tiny(work / "mlperf_tiny").items()]
    for space in bench.SPACES:
        for seed in bench.TEST_SEEDS:
            sp, arch, in_ch = bench.sample_arch(space, seed)
            models.append((f"{space}-{seed}", bench.export_arch(space, seed, work), sp.to_ir(arch, in_ch, 10)))
    print(f"| {mcu_name} | flash image | harness | image − harness | estimate (file + code) | estimate from the IR |")
    for name, path, ir in models:
        report = run_firmware(path, mcu, src)
        image = sum(report["sections"][k] for k in ("text", "rodata", "data"))
        harness = flash_breakdown(Path(report["elf"]))["harness"]
        graph = read_tflite(path)
        est = path.stat().st_size + runtime_code("tflm", mcu.core, {op.kind for op in graph.ops}).bytes
        from_ir = estimate(ir or graph, mcu, "tflm").flash.total_bytes
        real = image - harness
        print(f"| {name} | {image:,} | {harness:,} | {real:,} | {est:,} ({(est - real) / real:+.1%}) | "
              f"{from_ir:,} ({(from_ir - real) / real:+.1%}) |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="write estimators/data/runtime_code_size.yaml")
    ap.add_argument("--cores", nargs="*", help="TFLM TARGET_ARCH names (default: every core tinynas.target builds)")
    ap.add_argument("--models", type=Path, metavar="WORK_DIR",
                    help="compare the shipped data with the firmware of real models (built in WORK_DIR)")
    ap.add_argument("--mcu", default="stm32f412", help="board for --models (default stm32f412, Cortex-M4)")
    args = ap.parse_args()
    if args.models:
        return compare_models(args.models, args.mcu)
    src = _instruction_bench().sources()
    available = target_cores()
    wanted = args.cores or list(available)
    unknown = [c for c in wanted if c not in available]
    if unknown:
        sys.exit(f"runtime_code_size.py: error: --cores {' '.join(unknown)}; allowed: {', '.join(available)}")
    ops = op_kinds()
    measured = {}
    for arch in wanted:
        entry = measure_core(src, arch, available[arch], ops)
        entry["checks"] = check(src, arch, entry, {**CHECK_SETS, "all op kinds": ops})
        entry.update(provenance(src, arch, available[arch]))
        measured[arch] = entry
        errs = [abs(r["error"]) for r in entry["checks"]]
        print(f"{arch}: base {entry['base_bytes']:,} B, {len(entry['groups'])} groups; op-set checks max |error| "
              f"{max(errs):.2%}", flush=True)
    if args.write:
        write(measured)


if __name__ == "__main__":
    main()
