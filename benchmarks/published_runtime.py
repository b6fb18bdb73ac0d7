"""Count the instructions of a published setup's own runtime: the TFLM + CMSIS-NN an MLPerf Tiny submission
published beside its results, built for the board's core and run once per model in the emulator.

    python benchmarks/published_runtime.py --results-repo PATH [--setup ra6m4] [--write] [--clang PATH]

A board's published latencies disagree with one cycles-per-instruction constant partly because the submission
ran an older runtime than the pinned one (other kernels, other loops), and partly because of the board's memory
system. Counting the setup's own runtime separates the two: latency ÷ these counts is the board's rate for the
code it really ran. `benchmarks/latency_calibration.py` fits each board's cycles_per_instruction on these counts
where this file has them (estimators/data/published_runtime_instructions.csv, written by --write).

PATH is a checkout of the results repository the setup names (e.g. mlcommons/tiny_results_v0.7), or its bare
git directory (read with `git archive`). The runtime's sources are build inputs, like the pinned TFLM tree:
nothing of them is copied into this project. Objects are cached under $TINYNAS_CACHE/published/.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # benchmarks/estimators.py would shadow the `estimators` package

import argparse
import csv
import dataclasses
import hashlib
import os
import re
import subprocess
import tempfile

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "estimators" / "data" / "published_runtime_instructions.csv"
MAIN = Path(__file__).with_name("published_runtime_main.cc")
MARKERS_DIR = ROOT / "tinynas" / "target" / "data"  # tinynas_markers.h, which MAIN includes
FIELDS = ("mcu", "model", "instructions", "fully_connected_instructions", "operators", "runtime", "build")


@dataclasses.dataclass(frozen=True)
class Setup:
    """How a submission built its runtime, as far as its published project says, and where its models are."""

    mcu: str                            # the MCU catalogue's name (conf/mcu)
    repository: str                     # the results repository (GitHub owner/name)
    code: str                           # the submission's project folder in it
    folders: tuple[str, ...]            # what to take from `code` (its runtime, headers, models)
    sources: tuple[str, ...]            # globs under `code`: the runtime's .cc/.c files
    exclude: tuple[str, ...]            # path substrings left out (apps, tests, host-only files)
    includes: tuple[str, ...]           # include folders under `code`
    arch: tuple[str, ...]               # -mcpu / FPU flags of the project
    optimization: str                   # the project's optimization level
    defines: tuple[str, ...]            # the project's preprocessor defines
    cflags: tuple[str, ...]             # the project's C flags
    cxxflags: tuple[str, ...]           # the project's C++ flags
    api: int                            # TFLM interface year: 2021 (tflite::Profiler) or 2023 (MicroProfilerInterface)
    models: dict[str, tuple[str, str]]  # calibration csv model -> (model source under `code`, its define or "")
    model_symbol: str                   # the model array's name in those sources
    model_decl: str                     # how main declares the model's bytes ...
    model_expr: str                     # ... and names them
    ops: tuple[str, ...]                # MicroMutableOpResolver Add* calls the project's models need
    arena_bytes: int
    compat: tuple[str, ...] = ()        # what GCC 12's headers need that the project's compiler did not
    note: str = ""


_SECTIONS = ("-ffunction-sections", "-fdata-sections")
SETUPS = {s.mcu: s for s in (
    Setup(
        mcu="ra6m4",
        repository="mlcommons/tiny_results_v0.7",
        code="closed/renesas/code/EK_RA6M4",
        folders=("src", "ra/arm/CMSIS_5/CMSIS/Core/Include"),
        sources=("src/tensorflow/**/*.cc", "src/tensorflow/**/*.c", "src/third_party/**/*.cc",
                 "src/tensorflow/lite/micro/tools/make/downloads/cmsis/CMSIS/NN/Source/**/*.c"),
        exclude=("/examples/", "kernel_runner", "test_helpers", "recording_"),
        includes=("src", "src/third_party/flatbuffers/include", "src/third_party/gemmlowp", "src/third_party/ruy",
                  "src/tensorflow/lite/micro/tools/make/downloads/cmsis/CMSIS/NN/Include",
                  "src/tensorflow/lite/micro/tools/make/downloads/cmsis/CMSIS/DSP/Include",
                  "ra/arm/CMSIS_5/CMSIS/Core/Include"),
        # .cproject, configuration Debug (the one its model define is set in; Release differs only in -O2)
        arch=("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
        optimization="-O3",
        defines=("-D_RENESAS_RA_",),  # no NDEBUG: TFLM's DCHECKs and profiler scopes stay, as on the board
        cflags=("-std=gnu11", "-fsigned-char", *_SECTIONS),
        cxxflags=("-std=c++11", "-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics", "-fno-use-cxa-atexit",
                  "-fsigned-char", *_SECTIONS),
        api=2021,
        models={"mlperf_kws_dscnn": ("src/tensorflow/lite/micro/examples/TFLite_model_KWS.cc", "EEMBCKWS"),
                "mlperf_vww_mobilenetv1_0.25_96": ("src/tensorflow/lite/micro/examples/TFLite_model_vww.cc",
                                                   "EEMBCVWW"),
                "mlperf_ic_resnet8": ("src/tensorflow/lite/micro/examples/TFLite_model_IC.cc", "EEMBCIC"),
                "mlperf_ad_fc_autoencoder": ("src/tensorflow/lite/micro/examples/TFLite_model_AD.cc", "EEMBCAD")},
        model_symbol="tflite_model",
        model_decl="extern const unsigned char tflite_model[]",
        model_expr="tflite_model",
        ops=("AddAdd", "AddAveragePool2D", "AddConv2D", "AddDepthwiseConv2D", "AddFullyConnected", "AddRelu",
             "AddRelu6", "AddReshape", "AddSoftmax"),  # main_functions.cc's resolver
        arena_bytes=200 * 1024,
        compat=("-include", "limits", "-include", "cstdint"),
        note="TFLM of 2021 with CMSIS_5's CMSIS-NN, e2 studio GCC project; here arm-none-eabi-gcc 12",
    ),
    Setup(
        mcu="ra8d1",
        repository="mlcommons/tiny_results_v1.2",
        code="closed/Renesas/code/EK-RA8D1",
        folders=("src", "ra/arm/CMSIS_5/CMSIS/Core/Include"),
        sources=("src/tflite-micro/tensorflow/**/*.cc", "src/tflite-micro/cmsis_nn/Source/**/*.c"),
        # the .cproject excludes kernels/normal/ (the reference kernels beside the cmsis_nn ones)
        exclude=("kernels/normal/", "test_helper", "kernel_runner", "mock_micro_graph", "fake_micro_context",
                 "recording_", "/examples/", "/tools/", "_test.cc"),
        includes=("src", "src/examples", "src/tflite-micro", "src/tflite-micro/cmsis_nn",
                  "src/tflite-micro/cmsis_nn/Include", "src/tflite-micro/third_party",
                  "src/tflite-micro/third_party/flatbuffers/include", "src/tflite-micro/third_party/gemmlowp",
                  "src/tflite-micro/third_party/ruy", "ra/arm/CMSIS_5/CMSIS/Core/Include"),
        # .cproject, configuration Debug (LLVM 17.0.1, optimization "speed", taken as -O3; -O2 counts within
        # 0.2-4.7%): the M85 as M55 code, as tinynas firmware builds it
        arch=("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),
        optimization="-O3",
        defines=("-DCMSIS_NN=1", "-DCOMPILE_DEFINITIONS", "-DR7FA8D1BH", "-DRA8D1", "-DTF_LITE_STATIC_MEMORY",
                 "-DTF_LITE_USE_CTIME", "-D_RENESAS_RA_", "-D_RA_CORE=CM85", "-D_RA_ORDINAL=1"),  # no NDEBUG
        cflags=("-std=c99", "-fmessage-length=0", "-fsigned-char", *_SECTIONS, "-fshort-enums", "-fno-unroll-loops",
                "-flax-vector-conversions"),
        cxxflags=("-std=gnu++17", "-fmessage-length=0", "-fsigned-char", *_SECTIONS, "-fshort-enums",
                  "-fno-unroll-loops", "-flax-vector-conversions", "-funsigned-char", "-fno-rtti", "-fno-exceptions",
                  "-fno-threadsafe-statics", "-fno-use-cxa-atexit", "-fno-unwind-tables"),
        api=2023,
        models={"mlperf_kws_dscnn": ("src/examples/kws_tflm/model.cc", ""),
                "mlperf_vww_mobilenetv1_0.25_96": ("src/examples/vww_tflm/model.cc", ""),
                "mlperf_ic_resnet8": ("src/examples/ic_tflm/model.cc", ""),
                "mlperf_ad_fc_autoencoder": ("src/examples/ad_tflm/model.cc", "")},
        model_symbol="tflite_model",
        model_decl="const uint8_t* get_model_pointer()",
        model_expr="get_model_pointer()",
        ops=("AddAdd", "AddAveragePool2D", "AddConv2D", "AddDepthwiseConv2D", "AddDequantize", "AddFullyConnected",
             "AddQuantize", "AddReshape", "AddSoftmax"),  # the union of the four apps' resolvers
        arena_bytes=200 * 1024,
        compat=("-include", "limits", "-include", "cstdint"),
        note="TFLM of 2023 with CMSIS-NN v12.4.0, built by Renesas with LLVM 17; here arm-none-eabi-gcc 12 (the "
             "matrix kernels' inner loops are inline assembly)",
    ),
)}


def extract(repo: Path, setup: Setup, dest: Path) -> tuple[Path, str]:
    """The setup's project folders (from a checkout, or `git archive` of a git directory) and the commit."""
    git = ["git", "-C", str(repo)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
    if (repo / setup.code).is_dir():
        return repo / setup.code, commit
    if commit == "unknown":
        raise SystemExit(f"--results-repo {repo}: neither a checkout holding {setup.code} nor a git directory")
    paths = [f"{setup.code}/{f}" for f in setup.folders]
    archive = subprocess.run([*git, "archive", "HEAD", *paths], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"--results-repo {repo}: git archive of {paths} failed: {archive.stderr.decode()[-300:]}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / setup.code, commit


def sources(code: Path, setup: Setup) -> list[Path]:
    files = {p for pattern in setup.sources for p in code.glob(pattern)}
    return sorted(p for p in files if not any(x in str(p.relative_to(code)) for x in setup.exclude))


def compile_flags(code: Path, setup: Setup, clang: str | None = None) -> tuple[list[str], list[str]]:
    """The C++ and C compiler commands: Arm GCC's, or with ``clang`` that LLVM compiler for arm-none-eabi on the
    same C and C++ libraries' headers (GCC's newlib and libstdc++)."""
    common = [*setup.arch, setup.optimization, *setup.defines, *(f"-I{code / i}" for i in setup.includes)]
    if clang is None:
        return (["arm-none-eabi-g++", *common, *setup.cxxflags, *setup.compat],
                ["arm-none-eabi-gcc", *common, *setup.cflags])
    target = ["--target=arm-none-eabi", *(f for d in gcc_library_includes(setup.arch, "c") for f in ("-isystem", d))]
    cxx_target = ["--target=arm-none-eabi", "-nostdinc++",
                  *(f for d in gcc_library_includes(setup.arch, "c++") for f in ("-isystem", d))]
    return ([f"{clang}++", *cxx_target, *common, *map(llvm_flag, setup.cxxflags), *setup.compat],
            [clang, *target, *common, *map(llvm_flag, setup.cflags)])


def gcc_library_includes(arch: tuple[str, ...], language: str) -> list[str]:
    """Arm GCC's include folders for ``arch`` and ``language`` ("c" or "c++") less its compiler-internal ones
    (clang brings its own stdint.h, arm_mve.h ...)."""
    out = subprocess.run(["arm-none-eabi-gcc", *arch, f"-x{language}", "-E", "-v", "-"], input="",
                         capture_output=True, text=True).stderr
    listed = out.split("#include <...> search starts here:")[1].split("End of search list.")[0].split()
    return [str(Path(d).resolve()) for d in listed if "/lib/gcc/" not in str(Path(d).resolve())]


def llvm_flag(flag: str) -> str:
    """GCC's spelling of a flag in clang's."""
    return {"-flax-vector-conversions": "-flax-vector-conversions=all"}.get(flag, flag)


def cache_key(commit: str, setup: Setup, flags: tuple[list[str], list[str]], code: Path) -> str:
    """The objects' cache key: the commit, the setup and the compile commands, which name the code by the commit,
    not by the folder it was extracted to (a new temporary one each run)."""
    portable = [[f.replace(str(code), "<code>") for f in command] for command in flags]
    return hashlib.sha256(repr((commit, setup, *portable)).encode()).hexdigest()[:16]


def build_runtime(code: Path, setup: Setup, flags: tuple[list[str], list[str]], objdir: Path) -> list[Path]:
    """Compile the runtime's files with ``flags`` (C++, C; two at a time, cached by the flags); the objects."""
    cxx, cc = flags
    objs, running = [], []
    for src in sources(code, setup):
        obj = objdir / (str(src.relative_to(code)).replace("/", "_") + ".o")
        objs.append(obj)
        if obj.is_file():
            continue
        running.append(subprocess.Popen([*(cxx if src.suffix == ".cc" else cc), "-w", "-c", str(src), "-o", str(obj)],
                                        stderr=subprocess.PIPE, text=True))
        while len(running) >= 2:
            _wait(running.pop(0))
    for proc in running:
        _wait(proc)
    return objs


def _wait(proc: subprocess.Popen) -> None:
    if proc.wait() != 0:
        raise SystemExit(f"compile failed: {' '.join(proc.args[-3:])}\n{proc.stderr.read()[-2000:]}")


def firmware(code: Path, setup: Setup, model: str, cxx: list[str], linked: list[str], objdir: Path) -> Path:
    """``model``'s ELF: the main template and the model source compiled with ``cxx``, linked with ``linked`` (the
    linker script's flags, start-up and runtime objects)."""
    src, define = setup.models[model]
    main_o, model_o = objdir / f"main_{model}.o", objdir / f"model_{model}.o"
    ops = "".join(f"resolver.{op}();" for op in setup.ops)
    subprocess.run([*cxx, f"-DPUBLISHED_RUNTIME_MODEL_DECL={setup.model_decl}",
                    f"-DPUBLISHED_RUNTIME_MODEL={setup.model_expr}", f"-DPUBLISHED_RUNTIME_OPS={ops}",
                    f"-DPUBLISHED_RUNTIME_API={setup.api}", f"-DPUBLISHED_RUNTIME_ARENA={setup.arena_bytes}",
                    f"-I{MARKERS_DIR}", "-c", str(MAIN), "-o", str(main_o)], check=True)
    subprocess.run([*cxx, *([f"-D{define}"] if define else []), "-c", str(code / src), "-o", str(model_o)],
                   check=True)
    elf = objdir / f"{model}.elf"
    subprocess.run(["arm-none-eabi-g++", *setup.arch, "-o", str(elf), str(main_o), str(model_o), *linked], check=True)
    return elf


def operator_kinds(code: Path, setup: Setup, model: str) -> list[str]:
    """The model's operators in execution order, read from the C array of its model source."""
    from estimators.tflite_reader import read_tflite

    text = (code / setup.models[model][0]).read_text(errors="replace")
    body = text[text.index("{", text.index(setup.model_symbol)) + 1:]
    data = bytes(int(x, 16) for x in re.findall(r"0x([0-9a-fA-F]{1,2})\b", body[:body.index("}")]))
    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(data)
        f.flush()
        return [op.kind for op in read_tflite(f.name).ops]


def count(repo: Path, setup: Setup, clang: str | None = None) -> list[dict]:
    """Build the setup's runtime (with Arm GCC, or ``clang``) and run each of its models once: one row per model
    (the data file's fields and the model's ``elf``)."""
    from tinynas.target import emulate
    from tinynas.target.build import DATA, core_for
    from tinynas.target.sources import cache_dir
    from estimators.mcu import load_mcu

    core = core_for(load_mcu(setup.mcu, ROOT / "conf" / "mcu").core)
    compiler = _compiler(clang)
    build = " ".join([compiler, *setup.arch, setup.optimization, *setup.defines])
    print(f"{setup.mcu}: {setup.note}" + (f"; this run: {compiler}" if clang else ""), flush=True)
    with tempfile.TemporaryDirectory(prefix="tinynas-published-") as tmp:
        code, commit = extract(repo, setup, Path(tmp))
        flags = compile_flags(code, setup, clang)
        objdir = cache_dir() / "published" / f"{setup.mcu}-{cache_key(commit, setup, flags, code)}"
        objdir.mkdir(parents=True, exist_ok=True)
        runtime = build_runtime(code, setup, flags, objdir)
        startup = objdir / "startup.o"
        subprocess.run(["arm-none-eabi-gcc", *setup.arch, "-O2", "-c", str(DATA / "startup.c"), "-o", str(startup)],
                       check=True)
        linked = ["--specs=rdimon.specs", "-T", str(DATA / core.linker_script), f"-L{DATA}", "-Wl,--gc-sections",
                  "-Wl,--no-enum-size-warning", str(startup), *map(str, runtime), "-lm"]
        rows = []
        for model in setup.models:
            elf = firmware(code, setup, model, flags[0], linked, objdir)
            run = emulate.run(elf, core.board, cache_dir())
            kinds = operator_kinds(code, setup, model)
            if len(kinds) != len(run.per_op):
                raise SystemExit(f"{setup.mcu} {model}: {len(run.per_op)} operators ran, the model has {len(kinds)}")
            fc = sum(n for n, k in zip(run.per_op, kinds) if k == "FULLY_CONNECTED")
            rows.append(dict(mcu=setup.mcu, model=model, instructions=run.instructions,
                             fully_connected_instructions=fc, operators=len(kinds),
                             runtime=f"{setup.repository}@{commit[:7]} {setup.code}", build=build, elf=elf))
            print(f"{setup.mcu:8s} {model:32s} {run.instructions:12,d} instructions, {len(kinds)} operators, "
                  f"FC {fc / run.instructions:.1%}", flush=True)
    return rows


def _compiler(clang: str | None) -> str:
    """``arm-none-eabi-gcc VERSION``, or the first line of ``clang --version``."""
    if clang:
        return (subprocess.run([clang, "--version"], capture_output=True, text=True).stdout.splitlines() or [clang])[0]
    out = subprocess.run(["arm-none-eabi-gcc", "-dumpversion"], capture_output=True, text=True).stdout.strip()
    return f"arm-none-eabi-gcc {out or '?'}"


def write(rows: list[dict]) -> None:
    """Replace the rows of the counted boards in the data file, keep the others."""
    counted, kept = {r["mcu"] for r in rows}, []
    if OUT.is_file():
        with open(OUT) as f:
            kept = [r for r in csv.DictReader(f) if r["mcu"] not in counted]
    with open(OUT, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS, extrasaction="ignore")  # a row's elf stays out
        w.writeheader()
        w.writerows(sorted(kept + rows, key=lambda r: (r["mcu"], r["model"])))
    print(f"wrote {OUT.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results-repo", type=Path, required=True,
                    help="checkout (or git directory) of the results repository the setup names")
    ap.add_argument("--setup", choices=sorted(SETUPS), nargs="+", default=sorted(SETUPS))
    ap.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(ROOT)}")
    ap.add_argument("--clang", metavar="PATH",
                    help="build with this clang (LLVM, as Renesas built the RA8D1 project) instead of Arm GCC, on "
                         "GCC's newlib and libstdc++ headers; a diagnostic: its counts are never written, as the "
                         "instruction models are fitted on GCC builds")
    args = ap.parse_args()
    if args.clang and args.write:
        ap.error("--clang counts are not written (the instruction models count GCC builds): drop --write")
    rows = [row for name in args.setup for row in count(args.results_repo, SETUPS[name], args.clang)]
    if args.write:
        write(rows)


if __name__ == "__main__":
    main()
