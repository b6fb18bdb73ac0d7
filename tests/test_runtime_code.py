"""The runtime code part of the flash estimate (estimators/data/runtime_code_size.yaml) against linked firmware.

Ground truth: the flash image (text + rodata + data) of each model's firmware, built by tinynas.target with
TFLM + CMSIS-NN for the board's core, less its test harness as the linker map attributes it
(tinynas.target.linkmap: the runner, the test input, start-up, semihosting and what only they reach). The
model part is the real file's size first, so that the test checks the code model alone, then the estimate
from the IR.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from estimators import estimate, load_mcu
from estimators.flash import RUNTIME_CODE, runtime_code
from estimators.op_support import SUPPORTED_OPS
from estimators.tflite_reader import read_tflite
from tests.conftest import TARGET_MCU

ROOT = Path(__file__).resolve().parents[1]
MCU_DIR = ROOT / "conf" / "mcu"
M0PLUS_MCU = "stm32g0b1"  # Cortex-M0+: ARMv6-M code, run on the M4 board


def _data() -> dict:
    return yaml.safe_load(RUNTIME_CODE.read_text())["runtimes"]["tflm"]


def test_data_covers_exactly_the_op_kinds_the_estimators_model():
    """Every core's entry measured the op kinds runtime=tflm(-reference) estimates; each links code of its own
    beyond the base, and each group names only measured kinds."""
    tflm = _data()
    assert tflm["cores"], "no core measured"
    for core, entry in tflm["cores"].items():
        assert set(entry["ops"]) == set(SUPPORTED_OPS["tflm-reference"]), core
        grouped = set().union(*(g["ops"] for g in entry["groups"]))
        assert grouped == set(entry["ops"]), (core, set(entry["ops"]) - grouped)
        assert all(g["bytes"] > 0 for g in entry["groups"])
        assert entry["tflm_commit"] and entry["cmsis_nn_commit"] and "gcc" in entry["compiler"]


def test_data_op_kinds_are_registered_by_tflm_kernels(target):
    """Each measured op kind is one a TFLM kernel (reference or CMSIS-NN) defines Register_<OP>() for, in the tree
    the target builds."""
    import re

    kernels = target.root / "tensorflow" / "lite" / "micro" / "kernels"
    text = "\n".join(p.read_text(errors="replace") for p in kernels.rglob("*.cc") if not p.name.endswith("_test.cc"))
    for core, entry in _data()["cores"].items():
        for op in entry["ops"]:
            assert re.search(rf"\bRegister_{op}\s*\(\s*\)\s*\{{", text), (core, op)


def test_code_is_base_plus_the_groups_of_the_ops_and_grows_with_them():
    tflm = _data()
    entry = tflm["cores"]["cortex-m4"]
    base = runtime_code("tflm", "cortex-m4f", []).bytes
    assert base == entry["base_bytes"]
    conv = runtime_code("tflm", "cortex-m4f", ["CONV_2D"]).bytes
    both = runtime_code("tflm", "cortex-m4f", ["CONV_2D", "DEPTHWISE_CONV_2D"]).bytes
    dw = runtime_code("tflm", "cortex-m4f", ["DEPTHWISE_CONV_2D"]).bytes
    assert base < conv < both and dw < both
    assert both < conv + dw - base, "conv and depthwise share code (CMSIS-NN helpers, soft float): counted once"


def test_core_without_a_build_borrows_its_class_and_says_so():
    measured = runtime_code("tflm", "cortex-m4f", ["CONV_2D"])
    assert "no tflm build" not in measured.source and "90b983c" in measured.source
    if "cortex-m7" not in _data()["cores"]:
        m7 = runtime_code("tflm", "cortex-m7", ["CONV_2D"])
        assert m7.bytes == measured.bytes and "no tflm build for cortex-m7" in m7.source
    host = runtime_code("tflm", "x86_64", ["CONV_2D"])
    assert host.bytes > 0 and "no tflm build for x86_64" in host.source
    assert "no measured code for CUSTOM" in runtime_code("tflm", "cortex-m4f", ["CUSTOM"]).source


def _firmware_cases(mlperf_tiny, space_exports):
    cases = [(f"mlperf-{name}", path, None) for name, path in mlperf_tiny.items()]
    return cases + [(name, path, ir) for name, (path, ir) in space_exports.items()]


def _user_firmware_bytes(report: dict) -> tuple[int, dict[str, int]]:
    """The ELF's flash image less its test harness, and the image's parts."""
    from tinynas.target.linkmap import flash_breakdown

    parts = flash_breakdown(Path(report["elf"]))
    image = sum(report["sections"][k] for k in ("text", "rodata", "data"))
    assert sum(parts.values()) == image, "the map accounts for every byte of the image"
    return image - parts["harness"], parts


@pytest.mark.slow
def test_flash_estimate_within_5_percent_of_linked_firmware(target, mlperf_tiny, space_exports, firmware_report):
    mcu = load_mcu(TARGET_MCU, MCU_DIR)
    for name, path, ir in _firmware_cases(mlperf_tiny, space_exports):
        firmware, parts = _user_firmware_bytes(firmware_report(path))
        graph = read_tflite(path)
        code = runtime_code("tflm", mcu.core, {op.kind for op in graph.ops})
        assert code.bytes == pytest.approx(parts["runtime"] + parts["other"], rel=0.02), name
        assert path.stat().st_size + code.bytes == pytest.approx(firmware, rel=0.05), name
        if ir is not None:  # a space's export: the model part estimated from the space's IR too (the flash model
            # is fitted on our onnx2tf exports; the Keras-converted references' names and FC quantization differ,
            # and for a .tflite the estimators take the file's size, as above)
            est = estimate(ir, mcu, "tflm").flash
            assert est.total_bytes == pytest.approx(firmware, rel=0.05), (name, est)


@pytest.mark.slow
def test_flash_estimate_on_cortex_m0plus(target, mlperf_tiny, firmware_report):
    mcu = load_mcu(M0PLUS_MCU, MCU_DIR)
    assert mcu.core == "cortex-m0plus"
    for name, path in mlperf_tiny.items():
        firmware, parts = _user_firmware_bytes(firmware_report(path, M0PLUS_MCU))
        code = runtime_code("tflm", mcu.core, {op.kind for op in read_tflite(path).ops})
        assert "cortex-m0plus build" in code.source
        assert code.bytes == pytest.approx(parts["runtime"] + parts["other"], rel=0.02), name
        assert path.stat().st_size + code.bytes == pytest.approx(firmware, rel=0.05), name


_MAP = """Archive member included to satisfy reference by file (symbol)

Linker script and memory map

LOAD /tmp/fw.tmp/main.o
LOAD /tmp/fw.tmp/libtflm.a

.text           0x00000000       0x30
 *(.text*)
 .text._ZN6tflite4EvalEv
                0x00000000       0x10 /tmp/fw.tmp/libtflm.a(conv.o)
                0x00000000                tflite::Eval()
 .text          0x00000010        0x8 /tmp/fw.tmp/main.o
 *fill*         0x00000018        0x8 
 .text.arm_convolve_s8.isra.0
                0x00000020       0x10 /tmp/fw.tmp/libtflm.a(arm_convolve_s8.o)

.rodata         0x00000030        0x8
 .rodata.str1.1
                0x00000030        0xc /tmp/fw.tmp/libtflm.a(conv.o)

.bss            0x20000000      0x100
 .bss.arena     0x20000000      0x100 /tmp/fw.tmp/main.o
"""


def test_link_map_gives_each_flash_input_section_and_the_image(tmp_path):
    from tinynas.target.linkmap import read_map, section_symbol

    (tmp_path / "firmware.map").write_text(_MAP)
    link = read_map(tmp_path / "firmware.map")
    assert [(s.file, s.name, s.size, s.output) for s in link.sections] == [
        ("libtflm.a(conv.o)", ".text._ZN6tflite4EvalEv", 16, ".text"), ("main.o", ".text", 8, ".text"),
        ("libtflm.a(arm_convolve_s8.o)", ".text.arm_convolve_s8.isra.0", 16, ".text"),
        ("libtflm.a(conv.o)", ".rodata.str1.1", 12, ".rodata")]
    assert link.flash_bytes == 0x38 and link.other_bytes == 8 - 4  # padding less the strings merged away
    assert link.paths["main.o"] == tmp_path / "main.o"  # the temporary folder was renamed
    assert section_symbol(".text.arm_convolve_s8.isra.0") == "arm_convolve_s8" and section_symbol(".text") == ""
