"""The target in the loop: TFLite Micro + CMSIS-NN firmware for Cortex-M cores, run in qemu-system-arm.

Ground truth for the runtime=tflm estimators: the emulated 32-bit target's arena (TFLM's RecordingMicroAllocator
on the board) and outputs bit-identical to the tflite-micro Python interpreter. Needs a TFLM tree
($TINYNAS_TFLM_ROOT, else ../shared/third_party/tflite-micro beside the clone) and the Arm GCC + QEMU tools
(.ci/run installs them); skips otherwise. The first build compiles TFLM's runtime and the kernels these models
use (minutes on 2 cores) into $TINYNAS_CACHE; later runs reuse it and take seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from estimators import load_mcu
from tinynas.paths import MCU_DIR

ROOT = Path(__file__).resolve().parents[1]
MCU = "stm32f412"  # Cortex-M4F: mps2-an386


@pytest.fixture(scope="session")
def exported_mcunet(tmp_path_factory):
    """A random MCUNet arch through our export pipeline: its .tflite and its IR."""
    import random

    import numpy as np
    import torch

    from search_spaces import get_space
    from tinynas.export import export_model

    space = get_space("mcunet", {"resolutions": [32, 40, 48], "widths": [0.3, 0.5]})
    arch = space.random(random.Random(0))
    torch.manual_seed(0)
    model = space.build_torch(arch, 1, 10)
    torch.nn.init.normal_(model.classifier.bias)
    calib = np.random.default_rng(0).standard_normal((16, 1, arch.resolution, arch.resolution)).astype(np.float32)
    result = export_model(model, calib, tmp_path_factory.mktemp("mcunet") / "export")
    return Path(result.tflite_path), space.to_ir(arch, 1, 10)


@pytest.fixture(scope="session")
def reports(firmware_report, mlperf_tiny, exported_mcunet):
    """Firmware reports by model name, built and emulated on first use."""
    paths = {**mlperf_tiny, "mcunet": exported_mcunet[0]}
    return lambda name: firmware_report(paths[name])


MODELS = ["kws", "vww", "ic", "ad", "mcunet"]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_firmware_outputs_are_bit_exact(reports, name):
    assert reports(name)["outputs_match_interpreter"] is True


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_tflm_estimate_is_the_emulated_cortex_m4_arena(reports, name):
    """runtime=tflm from the .tflite (4-byte pointers, Arm EABI structs, CMSIS-NN scratch and OpData): the board's
    arena to the byte, head and tail (the issue asks for the head exactly and the total within 0.5%)."""
    r = reports(name)
    est, arena = r["estimate"], r["arena"]
    print(f"{name}: Invoke {r['instructions']:,}, arena {r['arena_used_bytes']:,} = {arena['head']:,} + "
          f"{arena['tail']:,}, estimate {est['sram_total_bytes']:,}")
    assert (est["sram_head_bytes"], est["sram_tail_bytes"]) == (arena["head"], arena["tail"]), (est, arena)


@pytest.mark.slow
def test_to_ir_estimate_of_an_exported_arch_is_the_emulated_arena(reports, exported_mcunet):
    from estimators import estimate

    est = estimate(exported_mcunet[1], load_mcu(MCU, MCU_DIR), "tflm")
    r = reports("mcunet")
    assert est.sram.activation_bytes == r["arena"]["head"]
    assert abs(est.sram.total_bytes - r["arena_used_bytes"]) <= 0.005 * r["arena_used_bytes"]


@pytest.mark.slow
def test_every_space_estimates_its_exported_firmwares_arena(space_exports, firmware_report):
    """A held-out exported arch of every search space: the estimate from the .tflite file gives the board's arena
    to the byte; from the space's own IR (what a search prices), its head exactly and its total within 0.5%."""
    from estimators import estimate

    mcu, off = load_mcu(MCU, MCU_DIR), {}
    for name, (path, ir) in space_exports.items():
        r = firmware_report(path)
        est = estimate(ir, mcu, "tflm").sram
        for source, head, total in [("file", r["estimate"]["sram_head_bytes"], r["estimate"]["sram_total_bytes"]),
                                    ("ir", est.activation_bytes, est.total_bytes)]:
            print(f"{name:<22} {source:<4} head {head:>8,} / {r['arena']['head']:>8,}"
                  f"  total {total:>8,} / {r['arena_used_bytes']:>8,}")
            tolerance = 0 if source == "file" else 0.005 * r["arena_used_bytes"]
            if head != r["arena"]["head"] or abs(total - r["arena_used_bytes"]) > tolerance:
                off[f"{name} ({source})"] = (head, r["arena"]["head"], total, r["arena_used_bytes"])
    assert off == {}



@pytest.mark.slow
def test_per_tensor_fully_connected_arena_is_the_boards(target, tmp_path):
    """The AD autoencoder with per-tensor FULLY_CONNECTED weights (the fixture's are per-channel; the estimators'
    MLPerf AD IR is per-tensor): no per-channel multipliers and shifts in the tail, and the estimate is still the
    emulated M4's arena to the byte."""
    from tests.tflite_models import _keras, convert_int8, fc_autoencoder
    from tinynas.target.firmware import run_firmware

    tf, _ = _keras()
    tf.keras.utils.set_random_seed(0)
    path = convert_int8(fc_autoencoder(), tmp_path / "ad_per_tensor.tflite", per_channel_dense=False)
    r = run_firmware(path, load_mcu(MCU, MCU_DIR), target)
    assert r["outputs_match_interpreter"] is True
    assert (r["estimate"]["sram_head_bytes"], r["estimate"]["sram_total_bytes"]) == (r["arena"]["head"],
                                                                                      r["arena_used_bytes"])


@pytest.mark.slow
def test_report_contract_from_the_cli(target, mlperf_tiny, tinynas_cli, tmp_path):
    from tinynas.target.firmware import op_kinds

    model = mlperf_tiny["kws"]
    out = tmp_path / "fw.json"
    env = {"TINYNAS_TFLM_ROOT": str(target.root), "TINYNAS_TFLM_DOWNLOADS": str(target.downloads),
           "PYTHONPATH": str(ROOT)}
    p = tinynas_cli("firmware", f"model={model}", f"mcu={MCU}", "format=json", f"out={out}", env=env)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r == json.loads(out.read_text())
    assert {"emulator", "core", "elf", "sections", "arena_used_bytes", "arena", "instructions", "per_op",
            "outputs_match_interpreter", "estimate"} <= set(r)
    assert "mps2-an386" in r["emulator"] and r["core"] == "cortex-m4" and Path(r["elf"]).is_file()
    assert set(r["sections"]) == {"text", "rodata", "data", "bss"} and all(v > 0 for v in r["sections"].values())
    assert r["sections"]["rodata"] > model.stat().st_size  # the model lives in .rodata
    assert r["arena_used_bytes"] == r["arena"]["head"] + r["arena"]["tail"]
    kinds = op_kinds(model.read_bytes())
    assert [(o["index"], o["kind"]) for o in r["per_op"]] == list(enumerate(kinds))
    assert all(o["instructions"] > 0 for o in r["per_op"])
    assert sum(o["instructions"] for o in r["per_op"]) < r["instructions"]  # plus the interpreter's own loop
    assert {"sram_total_bytes", "flash_bytes", "latency_ms"} <= set(r["estimate"])
    text = tinynas_cli("firmware", f"model={model}", f"mcu={MCU}", env=env)
    assert text.returncode == 0 and "DEPTHWISE_CONV_2D" in text.stdout and f"{r['instructions']:,}" in text.stdout


def test_without_a_tree_one_line_says_what_to_clone(tinynas_cli, tmp_path):
    env = {"TINYNAS_TFLM_ROOT": "", "PYTHONPATH": str(ROOT)}
    p = tinynas_cli("firmware", f"model={tmp_path / 'm.tflite'}", f"mcu={MCU}", env=env)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "tflite-micro" in p.stderr and "tflm.root" in p.stderr
    p = tinynas_cli("firmware", f"model={tmp_path / 'm.tflite'}", f"mcu={MCU}", f"tflm.root={tmp_path}", env=env)
    assert p.returncode == 2 and "not a tflite-micro checkout" in p.stderr


def test_a_core_without_a_build_is_refused(target, tinynas_cli, tmp_path):
    env = {"TINYNAS_TFLM_ROOT": str(target.root), "TINYNAS_TFLM_DOWNLOADS": str(target.downloads),
           "PYTHONPATH": str(ROOT)}
    p = tinynas_cli("firmware", f"model={tmp_path / 'm.tflite'}", "mcu=esp32s3", env=env)
    assert p.returncode == 2 and "xtensa-lx7" in p.stderr and "supported cores: cortex-m0plus" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_every_cortex_m_board_of_the_catalogue_has_a_build_and_an_emulated_board():
    """M0+/M3/M4/M7/M33/M55 (and the M85, which runs M55 code): each maps to TFLM flags and a QEMU board whose
    memory map has a linker script; the other cores (Xtensa, the x86_64 host) are refused."""
    from tinynas.target.build import DATA, core_for
    from tinynas.target.sources import TargetUnavailable
    from estimators.mcu import catalogue

    boards = {"cortex-m0plus": "mps2-an385", "cortex-m3": "mps2-an385", "cortex-m4f": "mps2-an386",
              "cortex-m7": "mps2-an500", "cortex-m33": "mps2-an505", "cortex-m55": "mps3-an547",
              "cortex-m85": "mps3-an547"}
    for name, mcu in catalogue(MCU_DIR).items():
        key = mcu.core.split()[0]
        if key in boards:
            core = core_for(mcu.core)
            assert core.board == boards[key] and (DATA / core.linker_script).is_file(), name
        else:
            with pytest.raises(TargetUnavailable, match="supported cores"):
                core_for(mcu.core)


# One catalogue board per emulated core beyond the M4: (board, QEMU machine, TFLM TARGET_ARCH).
OTHER_CORES = [("stm32f746", "mps2-an500", "cortex-m7"), ("ra6m4", "mps2-an505", "cortex-m33"),
               ("ra8d1", "mps3-an547", "cortex-m55")]


@pytest.mark.slow
@pytest.mark.parametrize("board, machine, arch", OTHER_CORES)
def test_other_cores_run_bit_exact_with_the_estimated_arena(target, mlperf_tiny, reports, board, machine, arch):
    """Cortex-M7 (AN500: PSRAM at 0x60000000), M33 (AN505, Secure), M55 (AN547, MVE kernels; the M85 board runs
    M55 code): outputs bit-exact, the runtime=tflm estimate (the core's CMSIS-NN scratch) = the board's arena.
    On the M55 the depthwise convs' scratch (4 × 124 × Kh·Kw B) and the FC's kernel sums (in the tail) differ
    from the M4's: the tail's small residual must be the M4's, to the byte."""
    from tinynas.target.firmware import run_firmware

    r = run_firmware(mlperf_tiny["kws"], load_mcu(board, MCU_DIR), target)
    assert machine in r["emulator"] and r["core"] == arch and r["outputs_match_interpreter"] is True
    assert r["estimate"]["sram_head_bytes"] == r["arena"]["head"]
    assert abs(r["estimate"]["sram_total_bytes"] - r["arena_used_bytes"]) <= 0.005 * r["arena_used_bytes"]
    m4 = reports("kws")
    residual = [x["estimate"]["sram_total_bytes"] - x["arena_used_bytes"] for x in (r, m4)]
    assert residual[0] == residual[1]


@pytest.mark.slow
def test_arch_is_exported_and_its_firmware_recorded(target, tinynas_cli, tmp_path):
    """arch=FILE.json: `tinynas export` first (which records firmware.json beside the .tflite), then the report;
    run=DIR finds the same export."""
    import random

    from search_spaces import get_space

    opts = ["dataset=digits", "search_space.options.resolutions=[32]", "search_space.options.widths=[0.3]"]
    arch = get_space("mcunet", {"resolutions": [32], "widths": [0.3]}).random(random.Random(3))
    spec = tmp_path / "arch.json"
    spec.write_text(json.dumps(arch.to_dict()))
    env = {"TINYNAS_TFLM_ROOT": str(target.root), "TINYNAS_TFLM_DOWNLOADS": str(target.downloads),
           "PYTHONPATH": str(ROOT)}
    p = tinynas_cli("firmware", f"arch={spec}", f"mcu={MCU}", "format=json", *opts, env=env, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)
    assert r["outputs_match_interpreter"] is True
    assert r["estimate"]["sram_head_bytes"] == r["arena"]["head"]
    export_dir = Path(r["model"]).parent
    recorded = json.loads((export_dir / "firmware.json").read_text())  # written by the export step
    assert recorded["elf"] == "firmware.elf" and (export_dir / "firmware.elf").is_file()
    assert (recorded["instructions"], recorded["arena"]) == (r["instructions"], r["arena"])
    again = tinynas_cli("firmware", f"run={export_dir}", f"mcu={MCU}", "format=json", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["instructions"] == r["instructions"]
    # The firmware is the export's own main.cc and model_data.cc/.h ...
    assert r["sources"] == {"export": True, **{n: str(export_dir / n) for n in ("main.cc", "model_data.cc", "model_data.h")}}
    assert recorded["sources"] == {"export": True, "main.cc": "main.cc", "model_data.cc": "model_data.cc",
                                   "model_data.h": "model_data.h"}
    _edited_main_changes_the_firmware(target, export_dir, r, tmp_path)
    # ... whose header states the input the model expects: the .tflite's quantization and the dataset's normalisation.
    _header_states_the_input(export_dir, opts, r["arena_used_bytes"])


def _edited_main_changes_the_firmware(target, export_dir: Path, r: dict, tmp_path: Path) -> None:
    """One line added to the export's main.cc (a print after AllocateTensors, outside the counted spans) gives
    another ELF that runs more instructions in all and exactly the same ones in Invoke and in each op."""
    import shutil

    from tinynas.target.firmware import EXPORT_FILES, export_sources, run_firmware

    copy = tmp_path / "edited"
    copy.mkdir()
    for name in ("model_int8.tflite", *EXPORT_FILES):
        shutil.copyfile(export_dir / name, copy / name)
    main = (copy / "main.cc").read_text()
    assert main.count("  ReportArena(interpreter);\n") == 1
    (copy / "main.cc").write_text(main.replace("  ReportArena(interpreter);\n", "  ReportArena(interpreter);\n"
                                               '  MicroPrintf("an edited main.cc");\n'))
    edited = run_firmware(copy / "model_int8.tflite", load_mcu(MCU, MCU_DIR), target)
    assert edited["sources"]["main.cc"] == str(copy / "main.cc") and edited["elf"] != r["elf"]
    assert (edited["instructions"], edited["per_op"]) == (r["instructions"], r["per_op"])
    assert edited["emulation"]["instructions_total"] > r["emulation"]["instructions_total"]
    with pytest.raises(Exception, match="does not hold the bytes"):
        export_sources(copy / "model_int8.tflite", b"another model")


def _header_states_the_input(export_dir: Path, opts: list[str], board_arena: int) -> None:
    import re

    from omegaconf import OmegaConf

    from tinynas.data import load_dataset
    from tinynas.export.verify import io_specs

    header = (export_dir / "model_data.h").read_text()

    def const(name: str) -> float:
        return float(re.search(rf"constexpr (?:float|int) {name} = ([^f;]+)f?;", header).group(1))

    inp, _ = io_specs(export_dir / "model_int8.tflite")
    assert [const(n) for n in ("kInputHeight", "kInputWidth", "kInputChannels")] == list(inp.shape[1:])
    assert const("kInputZeroPoint") == inp.zero_point and abs(const("kInputScale") / inp.scale - 1) < 1e-6
    data = load_dataset(OmegaConf.load(ROOT / "conf" / "dataset" / "digits.yaml"))
    assert abs(const("kInputMean") / data.mean - 1) < 1e-6 and abs(const("kInputStd") / data.std - 1) < 1e-6
    assert const("kInputRawScale") == 1 / 16  # sklearn's digits are stored as 0..16
    h, w = data.image_size
    assert f"resize {h}x{w} frames to {inp.shape[1]}x{inp.shape[2]}, bilinear" in header
    assert const("kTensorArenaSize") >= board_arena  # the handoff's arena fits the board's


@pytest.mark.slow
def test_kernel_files_an_op_needs_beyond_its_own_are_found_by_the_link(target, tmp_path):
    """DEPTHWISE_CONV_2D alone: its kernel uses conv_common.cc's tensor indices, which the link asks for."""
    from tests.tflite_models import _keras, convert_int8
    from tinynas.target.firmware import run_firmware

    tf, L = _keras()
    inp = tf.keras.Input((8, 8, 4), batch_size=1)
    path = convert_int8(tf.keras.Model(inp, L.DepthwiseConv2D(3, padding="same")(inp)), tmp_path / "dw.tflite")
    r = run_firmware(path, load_mcu(MCU, MCU_DIR), target)
    assert [o["kind"] for o in r["per_op"]] == ["DEPTHWISE_CONV_2D"] and r["outputs_match_interpreter"] is True


# -- parsing, without a target ------------------------------------------------------------------------
def test_spans_take_invoke_and_op_markers_in_order():
    from tinynas.target.emulate import _spans

    # (marker, instructions so far): an op before Invoke (Prepare) is ignored; two ops inside it.
    entries = [(2, 5), (3, 9), (0, 100), (2, 110), (3, 150), (2, 160), (3, 200), (1, 230), (2, 300), (3, 310)]
    assert _spans(entries) == (130, [40, 40])


def test_sections_group_loaded_sections_by_kind(monkeypatch):
    import subprocess

    from tinynas.target import firmware

    readelf = """  [Nr] Name              Type            Addr     Off    Size   ES Flg Lk Inf Al
  [ 0]                   NULL            00000000 000000 000000 00      0   0  0
  [ 1] .text             PROGBITS        00000000 010000 001000 00  AX  0   0  8
  [ 2] .rodata           PROGBITS        00001000 011000 000200 00   A  0   0  16
  [ 3] .data             PROGBITS        20000000 020000 000010 00  WA  0   0  4
  [ 4] .bss              NOBITS          21000000 030000 000400 00  WA  0   0 16
  [ 5] .comment          PROGBITS        00000000 020010 00001e 01  MS  0   0  1
"""
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, readelf, ""))
    assert firmware.sections(Path("x.elf")) == {"text": 0x1000, "rodata": 0x200, "data": 0x10, "bss": 0x400}


def test_undefined_symbols_from_the_linker():
    from tinynas.target.build import undefined_symbols

    err = ("ld: conv.cc:(.text+0x1): undefined reference to `arm_convolve_s8'\n"
           "ld: dw.cc:(.text+0x2): undefined reference to `tflite::kConvBiasTensor'\n")
    assert undefined_symbols(err) == {"arm_convolve_s8", "tflite::kConvBiasTensor"}


@pytest.mark.slow
def test_armv6m_firmware_on_the_m3_board_matches_the_estimate(target, mlperf_tiny):
    """Cortex-M0+ (stm32g0b1): CMSIS-NN's plain-C paths. Its depthwise convs ask for no scratch at all."""
    from tinynas.target.firmware import run_firmware

    r = run_firmware(mlperf_tiny["kws"], load_mcu("stm32g0b1", MCU_DIR), target)
    assert "mps2-an385" in r["emulator"] and r["core"] == "cortex-m0plus" and r["outputs_match_interpreter"] is True
    assert r["estimate"]["sram_head_bytes"] == r["arena"]["head"]
    assert abs(r["estimate"]["sram_total_bytes"] - r["arena_used_bytes"]) <= 0.005 * r["arena_used_bytes"]


def test_a_failed_build_is_one_line_naming_its_first_error_and_log(tmp_path):
    from tinynas.errors import TinyNASError
    from tinynas.target.emulate import EmulationError
    from tinynas.target.sources import BuildFailed

    output = ("arm-none-eabi-g++ -c runner.cc\nrunner.cc:12:3: error: 'Foo' was not declared in this scope\n"
              "   12 |   Foo();\ncollect2: error: ld returned 1 exit status\n")
    e = BuildFailed("linking model.tflite", output, tmp_path / "logs")
    assert isinstance(e, TinyNASError)  # the CLI prints it as one line and exits 2
    assert str(e).count("\n") == 0 and "runner.cc:12:3: error: 'Foo' was not declared" in str(e)
    assert str(e).startswith("linking model.tflite failed: ") and e.log.read_text() == output and str(e.log) in str(e)
    assert issubclass(EmulationError, TinyNASError)


@pytest.fixture(scope="module")
def arm_cxx(target):
    """(arm-none-eabi-g++ with the firmware's own flags and include paths, the tree copy to run it in)."""
    from tinynas.target.build import Tree, core_for

    tree = Tree(target, core_for("cortex-m4f"))
    tree.prepare()
    flags = tree.flags()
    includes = [i if not i.startswith("-I") or i[2:].startswith("/") else f"-I{tree.dir / i[2:]}"
                for i in flags.includes]
    return ["arm-none-eabi-g++", *flags.cxxflags, *includes], tree.dir


def test_arm_builtin_options_are_the_compilers(arm_cxx, tmp_path):
    """The runtime=tflm tail's Arm EABI builtin options (sizeof, alignof of each TfLite*Params: short enums) are what
    arm-none-eabi-g++ makes of the TFLM tree with the firmware's own flags. (The kernels' OpData sizes are checked by
    the emulated arenas above, to the byte; probing each kernel file here would take a minute of compiling.)"""
    import re
    import subprocess

    from estimators.tflm_memory import _BUILTIN_DATA_ARM_EABI, BUILTIN_STRUCTS

    probe = tmp_path / "builtin.cc"
    probe.write_text('#include "tensorflow/lite/c/builtin_op_data.h"\ntemplate <int S, int A> struct Show;\n' + "".join(
        f"Show<sizeof({struct}), alignof({struct})> v_{kind};\n" for kind, struct in BUILTIN_STRUCTS.items()))
    cxx, cwd = arm_cxx
    proc = subprocess.run([*cxx, "-fsyntax-only", str(probe)], capture_output=True, text=True, cwd=cwd)
    found = {kind: (int(size), int(align))
             for size, align, kind in re.findall(r"aggregate 'Show<(\d+), (\d+)> v_(\w+)'", proc.stderr)}
    assert found == _BUILTIN_DATA_ARM_EABI, proc.stderr[-2000:]


def test_exported_main_compiles_for_a_board_without_the_target_hooks(arm_cxx, mlperf_tiny, tmp_path):
    """main.cc as the user builds it (no -DTINYNAS_TARGET: its own hooks), for a Cortex-M4, warning-free."""
    import subprocess

    from tinynas.export.firmware import Preprocessing, model_ops, write_main, write_model_data
    from tinynas.export.verify import io_specs

    path = mlperf_tiny["kws"]
    inp, out = io_specs(path)
    write_model_data(tmp_path, path.read_bytes(), 32768, inp, out, "kws", Preprocessing("mfcc", None, 1.0, 0.5, 2.0))
    main = write_main(tmp_path, model_ops(path.read_bytes()), "kws")
    cxx, cwd = arm_cxx
    proc = subprocess.run([*cxx, f"-I{tmp_path}", "-Werror", "-c", str(main), "-o", str(tmp_path / "main.o")],
                          capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
