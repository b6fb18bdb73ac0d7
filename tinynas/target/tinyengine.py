"""TinyEngine firmware: the C its code generator writes for one model, its kernels, one emulated inference.

TinyEngine (MCUNet's inference engine, github.com/mit-han-lab/tinyengine) turns a .tflite into C that calls its
own kernels on one static buffer it plans itself (in-place depthwise, fused padding, float requantization). Here:

1. :func:`prepared` gives a FULLY_CONNECTED without a bias a zero one and a MEAN its input's quantization (the
   same real-valued function, in the form TinyEngine runs), then ``data/tinyengine_codegen.py`` runs the generator
   in a child process;
2. :func:`instrument` puts the marker calls of :mod:`tinynas.target.emulate` around each generated layer;
3. TinyEngine's kernels (``TinyEngine/src``, archived once per checkout and flags), the generated sources, the
   runner and the TFLM runner's start-up code and linker script are compiled for ARMv7E-M with the FPU
   (``-mcpu=cortex-m4 -mfloat-abi=hard -Ofast``: TinyEngine's own optimisation level; its requantization is
   float) against the CMSIS-NN / CMSIS Core headers TFLM pins, through ``data/tinyengine_compat.h`` (CMSIS 5
   names); cached under ``$TINYNAS_CACHE/tinyengine``;
4. QEMU's ``mps2-an386`` runs it with the same counting plugin as TFLM's firmware.

The report keys follow :func:`tinynas.target.firmware.run_firmware`'s where they mean the same, plus
``runtime``, ``flags``, ``arena`` {activations, total} as TinyEngine plans them, per-layer spans (the layers
the generator emitted: it folds PAD, RESHAPE, QUANTIZE), and the largest int8 difference of the output from the
tflite-micro interpreter's on the model (``outputs_max_abs_diff``) and on the prepared model TinyEngine ran
(``outputs_max_abs_diff_prepared``: TinyEngine's float requantization against TFLM's fixed point alone).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tinynas.target import emulate
from tinynas.target.build import core_for
from tinynas.target.sources import BuildFailed, Sources, TargetUnavailable, digest, tool_version

DATA = Path(__file__).with_name("data")
ENV_ROOT = "TINYNAS_TINYENGINE_ROOT"
CODEGEN = "code_generator/CodegenUtilTFlite.py"
KERNEL_DIRS = ("TinyEngine/src/kernels/int_forward_op", "TinyEngine/src/kernels/fp_requantize_op", "TinyEngine/src")
ARCH_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
CFLAGS = (*ARCH_FLAGS, "-Ofast", "-std=gnu11", "-ffunction-sections", "-fdata-sections", "-fno-unwind-tables",
          "-fno-asynchronous-unwind-tables", "--specs=rdimon.specs", "-w")
LDFLAGS = ("-Wl,--gc-sections", "-lm")
#: Cores whose ISA is TinyEngine's (ARMv7E-M: DSP instructions); the code is built for and counted on a Cortex-M4F.
CORES = ("cortex-m4", "cortex-m4f", "cortex-m7")
RUNNER_FILES = ("tinyengine_runner.c", "tinynas_markers.h", "startup.c", "mps2.ld", "cortex_m_sections.ld")
_LAYER = re.compile(r"^/\* layer (\d+):(\w+) \*/$")


def resolve_root(src: Sources, root=None) -> Path:
    """TinyEngine's checkout: ``root``, else ``$TINYNAS_TINYENGINE_ROOT``, else ``tinyengine`` beside the TFLM tree."""
    given = root or os.environ.get(ENV_ROOT) or src.root.parent / "tinyengine"
    path = Path(given).expanduser().resolve()
    if not (path / CODEGEN).is_file():
        raise TargetUnavailable(f"no TinyEngine checkout at {path} (no {CODEGEN}): clone "
                                f"https://github.com/mit-han-lab/tinyengine and set {ENV_ROOT}=DIR")
    return path


def check_core(core: str) -> None:
    if str(core).split()[0] not in CORES:
        raise TargetUnavailable(f"core {core!r}: TinyEngine's kernels need ARMv7E-M; supported cores: "
                                f"{', '.join(CORES)}")


def prepared(tflite: bytes) -> bytes:
    """The model as TinyEngine's generator can run it, computing the same real-valued function:

    - a FULLY_CONNECTED without a bias gets a zero int32 one (scale = input × weight scale, as TFLite quantizes
      biases): TinyEngine's parser requires three inputs;
    - a MEAN's output (and a RESHAPE of it) takes its input's quantization: TinyEngine runs it as ``avg_pooling``,
      which averages the int8 values and never rescales, so the op that reads the mean is told the scale it really
      gets (a coarser grid where the mean's own scale was finer).

    The bytes come back unchanged when neither applies."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(tflite, 0)
    graph = model.subgraphs[0]
    kind = {i: max(c.builtinCode, c.deprecatedBuiltinCode) for i, c in enumerate(model.operatorCodes)}
    changed, requantized = False, set()
    for op in graph.operators:
        inputs = [int(i) for i in op.inputs]
        if kind[op.opcodeIndex] in (schema.BuiltinOperator.MEAN, schema.BuiltinOperator.RESHAPE):
            src, dst = graph.tensors[inputs[0]].quantization, graph.tensors[int(op.outputs[0])].quantization
            if (kind[op.opcodeIndex] == schema.BuiltinOperator.MEAN or inputs[0] in requantized) and src and dst \
                    and (list(src.scale) != list(dst.scale) or list(src.zeroPoint) != list(dst.zeroPoint)):
                dst.scale, dst.zeroPoint = np.array(src.scale, np.float32), np.array(src.zeroPoint, np.int64)
                requantized.add(int(op.outputs[0]))  # a RESHAPE of it (a view) carries the same numbers
                changed = True
        if kind[op.opcodeIndex] != schema.BuiltinOperator.FULLY_CONNECTED or (len(inputs) > 2 and inputs[2] >= 0):
            continue
        x, w = graph.tensors[inputs[0]], graph.tensors[inputs[1]]
        units = int(w.shape[0])
        buffer = schema.BufferT()
        buffer.data = np.zeros(units * 4, np.uint8)
        model.buffers.append(buffer)
        quant = schema.QuantizationParametersT()
        quant.scale = np.asarray(x.quantization.scale, np.float32) * np.asarray(w.quantization.scale, np.float32)
        quant.zeroPoint = np.zeros(len(quant.scale), np.int64)
        bias = schema.TensorT()
        bias.shape, bias.type = np.array([units], np.int32), schema.TensorType.INT32
        bias.buffer = len(model.buffers) - 1
        bias.name, bias.quantization = b"tinynas_zero_bias", quant
        graph.tensors.append(bias)
        op.inputs = np.array(inputs[:2] + [len(graph.tensors) - 1], np.int32)
        changed = True
    if not changed:
        return tflite
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def generate(root: Path, tflite_path: Path, out: Path, name: str) -> int:
    """Run TinyEngine's generator on ``tflite_path`` (``name`` in messages) into ``out/codegen``; the activation
    bytes it planned."""
    for sub in ("Include", "Source"):
        (out / "codegen" / sub).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(root), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(DATA / "tinyengine_codegen.py"), str(tflite_path)], cwd=out, env=env,
                          capture_output=True, text=True)
    found = re.search(r"tinyengine:activation_bytes (\d+)", proc.stdout)
    if proc.returncode != 0 or not found:
        raise BuildFailed(f"TinyEngine's code generator on {name}", proc.stdout + proc.stderr, out)
    return int(found.group(1))


def instrument(source: str) -> tuple[str, list[str]]:
    """``genModel.c`` with the op markers around each layer of ``invoke()``, and the layers' kinds in order."""
    lines, kinds, in_invoke = [], [], False
    for line in source.splitlines():
        if line.startswith("void invoke("):
            in_invoke = True
        elif in_invoke and line == "}":
            lines.append("tinynas_op_end();")
            in_invoke = False
        elif in_invoke and (m := _LAYER.match(line)):
            lines.append("tinynas_op_end(); tinynas_op_begin();" if kinds else "tinynas_op_begin();")
            kinds.append(m.group(2))
        lines.append(line)
    if not kinds:
        raise BuildFailed("instrumenting genModel.c", "error: no '/* layer N:KIND */' lines in invoke()", Path("."))
    head = "void tinynas_op_begin(void);\nvoid tinynas_op_end(void);\n"
    return head + "\n".join(lines) + "\n", kinds


def _cc(args: list[str], what: str, log_dir: Path) -> None:
    proc = subprocess.run(["arm-none-eabi-gcc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildFailed(what, proc.stderr, log_dir)


def _includes(root: Path, src: Sources, compat: Path, *more: Path) -> list[str]:
    dirs = [*more, compat, root / "TinyEngine/include", src.downloads / "cmsis_nn/Include",
            src.downloads / "cmsis/CMSIS/Core/Include"]
    return ["-include", "arm_math.h", *(f"-I{d}" for d in dirs)]


def kernel_library(root: Path, src: Sources, cache: Path) -> Path:
    """TinyEngine's kernels compiled once per checkout, compat header, flags and compiler: ``libtinyengine.a``.
    A file that does not compile against today's CMSIS-NN (arm_convolve_s8_4col.c calls an older signature) is
    left out and listed in ``skipped.txt``; the link says so if a model needs it."""
    files = sorted(p for d in KERNEL_DIRS for p in (root / d).glob("*.c"))
    key = digest(*files, DATA / "tinyengine_compat.h", extra=" ".join(CFLAGS) + tool_version("arm-none-eabi-gcc"))
    out = cache / "tinyengine" / "kernels" / key
    lib = out / "libtinyengine.a"
    if lib.is_file():
        return lib
    tmp = out.with_name(key + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "compat").mkdir(parents=True)
    shutil.copyfile(DATA / "tinyengine_compat.h", tmp / "compat" / "arm_math.h")
    # tinyengine_function.h includes the generator's genInclude.h (prototypes of the generated depthwise kernels,
    # which no library file calls); a model's build puts its own first on the include path.
    (tmp / "compat" / "genInclude.h").write_text("/* no generated kernels in the library build */\n")
    print(f"tinynas firmware: compiling {len(files)} TinyEngine kernel files", file=sys.stderr, flush=True)
    objs, skipped = [], []
    for f in files:
        obj = tmp / f"{f.stem}.o"
        proc = subprocess.run(["arm-none-eabi-gcc", *CFLAGS, *_includes(root, src, tmp / "compat"), "-c", str(f),
                               "-o", str(obj)], capture_output=True, text=True)
        if proc.returncode == 0:
            objs.append(obj.name)
        else:
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), "")
            skipped.append(f"{f.relative_to(root)}: {first}")
    (tmp / "skipped.txt").write_text("\n".join(skipped) + "\n")
    subprocess.run(["arm-none-eabi-ar", "rcs", "libtinyengine.a", *objs], cwd=tmp, check=True)
    _publish(tmp, out)
    return lib


def _publish(tmp: Path, out: Path) -> None:
    """Move a finished build into place; a process that finished the same build first wins (same contents)."""
    try:
        tmp.rename(out)
    except OSError:  # ``out`` exists: built meanwhile by another process
        shutil.rmtree(tmp, ignore_errors=True)


def _input_source(x: np.ndarray) -> str:
    data = x.tobytes()
    rows = ",\n".join(", ".join(str(b) for b in data[i:i + 24]) for i in range(0, len(data), 24))
    return (f"#include <stdint.h>\nconst uint8_t g_input_data[] = {{\n{rows}\n}};\n"
            f"const unsigned int g_input_data_len = {len(data)};\n")


def build_firmware(root: Path, src: Sources, tflite_path: Path, x: np.ndarray, output_bytes: int) -> tuple[Path, dict]:
    """The linked ELF (cached by TinyEngine checkout, model, input, runner and flags) and what the generator planned:
    {layers, activation_bytes, arena_bytes}."""
    import json

    lib = kernel_library(root, src, src.cache)
    key = digest(root / "code_generator", *(DATA / n for n in (*RUNNER_FILES, "tinyengine_codegen.py")), tflite_path,
                 Path(__file__),
                 extra=" ".join(CFLAGS) + lib.parent.name + x.tobytes().hex())
    out = src.cache / "tinyengine" / "firmware" / key
    elf = out / "firmware.elf"
    if elf.is_file():
        return elf, json.loads((out / "plan.json").read_text())
    tmp = out.with_name(key + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model = tmp / "model.tflite"
    model.write_bytes(prepared(tflite_path.read_bytes()))
    activation_bytes = generate(root, model, tmp, tflite_path.name)
    gen = tmp / "codegen"
    text, kinds = instrument((gen / "Source/genModel.c").read_text())
    (gen / "Source/genModel.c").write_text(text)
    header = (gen / "Include/genModel.h").read_text()
    arena = int(re.search(r"#define PEAK_MEM (\d+)", header).group(1))
    (tmp / "input_data.c").write_text(_input_source(x))
    for name in RUNNER_FILES:
        shutil.copyfile(DATA / name, tmp / name)
    compat = lib.parent / "compat"
    inc = _includes(root, src, compat, gen / "Include")
    objs = []
    for f in [*sorted((gen / "Source").glob("*.c")), tmp / "tinyengine_runner.c", tmp / "input_data.c",
              tmp / "startup.c"]:
        obj = f.with_suffix(".o")
        _cc([*CFLAGS, *inc, f"-DTINYNAS_ARENA_BYTES={arena}", f"-DTINYNAS_OUTPUT_BYTES={output_bytes}", "-c",
             str(f), "-o", str(obj)], f"compiling {f.name}", tmp)
        objs.append(str(obj))
    _cc([*CFLAGS, f"-L{tmp}", "-T", str(tmp / "mps2.ld"), "-o", str(tmp / "firmware.elf"), *objs, str(lib), *LDFLAGS,
         f"-Wl,-Map={tmp / 'firmware.map'}"], f"linking {tflite_path.name} with TinyEngine", tmp)
    plan = {"layers": kinds, "activation_bytes": activation_bytes, "arena_bytes": arena}
    (tmp / "plan.json").write_text(json.dumps(plan))
    _publish(tmp, out)
    return elf, plan


def run_firmware(tflite_path, mcu, src: Sources, root=None) -> dict:
    """Generate, build and run ``tflite_path`` with TinyEngine for ``mcu``'s (ARMv7E-M) core; the report."""
    from tinynas.export.verify import io_specs
    from tinynas.target.firmware import estimate_for, sections, test_input
    from tinynas.tflm import run_tflm

    tflite_path = Path(tflite_path)
    if not tflite_path.is_file():
        raise TargetUnavailable(f"model={tflite_path}: no such file")
    check_core(mcu.core)
    root = resolve_root(src, root)
    inp, outp = io_specs(tflite_path)  # int8 input and output, as TinyEngine runs them
    x = test_input(inp.shape[1:])
    t0 = time.monotonic()
    elf, plan = build_firmware(root, src, tflite_path, x, int(np.prod(outp.shape)))
    build_s = time.monotonic() - t0
    board = core_for("cortex-m4f").board
    emu = emulate.run(elf, board, src.cache)
    if len(emu.per_op) != len(plan["layers"]):
        raise emulate.EmulationError(f"{len(emu.per_op)} op spans for {len(plan['layers'])} TinyEngine layers")
    got = np.frombuffer(emu.outputs[0], np.int8).astype(np.int32) if emu.outputs else np.zeros(0, np.int32)

    def max_abs_diff(model: Path) -> int | None:
        reference = np.asarray(run_tflm(model, x[None]))[0].astype(np.int8).ravel().astype(np.int32)
        return int(np.abs(got - reference).max()) if got.size == reference.size else None

    diff, diff_prepared = max_abs_diff(tflite_path), max_abs_diff(elf.parent / "model.tflite")
    return {
        "runtime": "tinyengine",
        "emulator": f"qemu-system-arm -M {board} ({tool_version('qemu-system-arm')})",
        "core": "cortex-m4 (ARMv7E-M, FPv4-SP hard float)",
        "flags": " ".join(CFLAGS),
        "elf": str(elf),
        "sections": sections(elf),
        "arena_used_bytes": plan["arena_bytes"],
        "arena": {"activations": plan["activation_bytes"], "total": plan["arena_bytes"]},
        "instructions": emu.instructions,
        "per_op": [{"index": i, "kind": k, "instructions": n}
                   for i, (k, n) in enumerate(zip(plan["layers"], emu.per_op))],
        "outputs_match_interpreter": diff == 0,
        "outputs_max_abs_diff": diff,
        "outputs_max_abs_diff_prepared": diff_prepared,
        "estimate": estimate_for(tflite_path, mcu, "tinyengine"),
        "model": str(tflite_path),
        "build_s": round(build_s, 2),
        "emulation": {"wall_s": round(emu.wall_s, 2), "instructions_total": emu.total_instructions},
    }


def table(r: dict) -> str:
    """The report as text: instructions per generated layer, the totals, TinyEngine's buffer, the outputs."""
    est = r.get("estimate") or {}
    from tinynas.target.firmware import per_op_lines

    rows = per_op_lines(r, f"{r['model']} with TinyEngine on {r['core']} in {r['emulator']}", "layer")
    s = r["sections"]
    rows += ["", f"invoke      {r['instructions']:,} instructions"
             + (f"   (estimate {est['instructions']:,})" if est.get("instructions") else ""),
             f"buffer      {r['arena']['total']:,} B (activations {r['arena']['activations']:,})"
             + (f"   (estimate {est['sram_total_bytes']:,} B)" if est else ""),
             f"sections    text {s['text']:,}  rodata {s['rodata']:,}  data {s['data']:,}  bss {s['bss']:,} B",
             f"outputs     max |difference| from the tflite-micro interpreter: {r['outputs_max_abs_diff']} "
             f"(on the model TinyEngine ran: {r['outputs_max_abs_diff_prepared']})",
             f"elf         {r['elf']}"]
    return "\n".join(rows)
