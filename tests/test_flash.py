"""Flash estimate against real full-int8 .tflite files (ground truth: the bytes our export pipeline writes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from estimators.flash import estimate_flash, flash_terms, runtime_code_bytes, tflite_bytes
from estimators.mcu import load_mcu
from estimators.reference_models import reference_model
from estimators.table import table_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_space_ir_estimates_its_exported_file_within_1_percent(space_exports):
    """A held-out exported arch of every search space (not among the calibration's files): what a search
    prices from the space's IR against the size of the .tflite file the export wrote."""
    errors = {name: tflite_bytes(ir) / path.stat().st_size - 1 for name, (path, ir) in space_exports.items()}
    print("\n".join(f"{name:<22} {space_exports[name][0].stat().st_size:>10,} B  {100 * e:+.3f}%"
                    for name, e in errors.items()))
    assert {n: round(e, 4) for n, e in errors.items() if abs(e) > 0.01} == {}


@pytest.mark.slow
def test_every_space_ir_counts_the_files_tensors_constants_and_channels(space_exports):
    """The counts the model prices exactly, against the exported file read back: its tensors (constants
    that equal ops share stored once, a RESHAPE before FULLY_CONNECTED dropped), its constant bytes and its
    quantization channels."""
    from estimators.tflite_reader import read_tflite

    for name, (path, ir) in space_exports.items():
        terms, file = flash_terms(ir), table_of(read_tflite(path))
        assert (terms["tensors"], terms["const_bytes"], terms["quant_channels"]) == \
            (file.tensors, file.const_bytes, file.quant_channels), name


def test_model_bytes_cover_weights_and_quantization_parameters():
    g = reference_model("mlperf_ic_resnet8")
    t = flash_terms(g)
    # int8 weights + int32 biases + the Flatten's int32 shape: 77,708 published parameters, 4 B for the 2+ int32s
    assert t["const_bytes"] > 77_708
    assert tflite_bytes(g) > t["const_bytes"] + 12 * t["quant_channels"]


def test_total_is_model_plus_runtime_code():
    g = reference_model("mlperf_kws_dscnn")
    mcu = load_mcu("stm32f746", ROOT / "conf" / "mcu")
    kinds = {op.kind for op in g.ops}
    for runtime in ("tflm-reference", "tflm", "tinyengine", "analytic"):
        f = estimate_flash(g, runtime, mcu)
        assert f.runtime_bytes == runtime_code_bytes(runtime, mcu.core, kinds)
        assert f.total_bytes == f.model_bytes + f.runtime_bytes
    assert runtime_code_bytes("analytic", mcu.core, kinds) == 0


def test_unknown_runtime_or_exporter_is_named():
    with pytest.raises(ValueError, match="tvm"):
        runtime_code_bytes("tvm", "cortex-m4f", ["CONV_2D"])
    with pytest.raises(ValueError, match="coreml"):
        tflite_bytes(reference_model("mlperf_kws_dscnn"), "coreml")
