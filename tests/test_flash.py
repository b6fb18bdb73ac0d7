"""Flash estimate against real full-int8 .tflite files (ground truth: the converters' own output bytes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from estimators.flash import estimate_flash, flash_terms, runtime_code_bytes, tflite_bytes
from estimators.mcu import load_mcu
from estimators.reference_models import reference_model

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT_SEEDS = (1001, 1002)  # the calibration uses seeds 0..n-1


def _calibration():
    spec = importlib.util.spec_from_file_location("flash_calibration", ROOT / "benchmarks" / "flash_calibration.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["keras", "onnx2tf"])
def test_estimate_within_2_percent_of_real_files(exporter, tmp_path):
    cal = _calibration()
    seeds = HELD_OUT_SEEDS if exporter == "keras" else HELD_OUT_SEEDS[:1]  # onnx2tf takes ~40 s a file
    for arch, graph in cal.archs(range(seeds[0], seeds[-1] + 1)):
        if exporter == "keras":
            real = len(cal.keras_tflite(arch))
        else:
            real = len(cal.onnx2tf_tflite(arch, tmp_path / arch.hash))
        assert tflite_bytes(graph, exporter) == pytest.approx(real, rel=0.02), (arch, real)


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

