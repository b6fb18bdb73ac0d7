"""The instruction model (runtime=tflm on DSP-class cores): emulated ground truth, estimate output, calibrate.

Ground truth: ``tinynas.target`` (TFLM + CMSIS-NN for Cortex-M4 in qemu-system-arm, exact instruction counts)
on exported archs of every search space, at seeds the model was not fitted on, and on the MLPerf Tiny
references. Those tests need the TFLM tree and the Arm toolchain and skip without them (like
tests/test_firmware.py); the rest runs anywhere.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from estimators import estimate, load_mcu
from estimators.instructions import _inside_taps, estimate_instructions, load_instruction_model
from estimators.reference_models import reference_model
from estimators.table import table_of
from tinynas.paths import MCU_DIR

ROOT = Path(__file__).resolve().parents[1]
BOARD = "stm32f412"


@pytest.mark.parametrize("seed", range(4))
def test_inside_taps_count_the_window_taps_inside_the_input(seed):
    rng = random.Random(seed)
    for _ in range(50):
        size, kernel, stride = rng.randint(1, 20), rng.choice([1, 3, 5, 7]), rng.choice([1, 2])
        padding = rng.choice(["same", "valid"]) if size >= kernel else "same"
        out = -(-size // stride) if padding == "same" else (size - kernel) // stride + 1
        before = max((out - 1) * stride + kernel - size, 0) // 2 if padding == "same" else 0
        brute = sum(0 <= o * stride - before + j < size for o in range(out) for j in range(kernel))
        assert _inside_taps(size, kernel, stride, padding) == brute, (size, kernel, stride, padding)


def test_a_fully_connected_layer_is_priced_by_its_neurons_per_tensor_or_per_channel():
    """CMSIS-NN's FC kernels loop over the output neurons either way; the table's per-channel count is 0 for a
    per-tensor FC (it keeps no per-channel multipliers), and pricing must not read it as zero neurons."""
    from estimators.builder import GraphBuilder

    def fc(per_channel: bool) -> int:
        g = GraphBuilder("fc", (640,))
        return estimate_instructions(g.finish(g.fully_connected(g.input, 128, per_channel=per_channel)))

    assert fc(False) == fc(True) > 640 * 128  # at least one instruction per MAC


def test_estimate_prices_tflm_latency_by_instructions_and_the_boards_cycles():
    graph = reference_model("mlperf_kws_dscnn")
    mcu = load_mcu("stm32l4r5", MCU_DIR)
    est = estimate(graph, mcu, "tflm")
    model = load_instruction_model()
    per_op = model.per_op(table_of(graph))
    assert est.instructions == pytest.approx(sum(per_op) + model.invoke_overhead(len(per_op)))
    assert [l.instructions for l in est.layers] == pytest.approx(per_op)
    fc = sum(n for n, op in zip(per_op, table_of(graph).ops) if op.kind == "FULLY_CONNECTED")
    assert fc > 0 and mcu.fully_connected_cpi_ratio not in (None, 1)  # the board prices its FC ops apart
    assert est.cycles == pytest.approx((est.instructions + (mcu.fully_connected_cpi_ratio - 1) * fc)
                                       * mcu.cycles_per_instruction)
    assert [l.cycles for l in est.layers] == pytest.approx(
        [n * mcu.cycles_per_instruction * (mcu.fully_connected_cpi_ratio if l.op == "FULLY_CONNECTED" else 1)
         for n, l in zip(per_op, est.layers)])
    assert est.latency_ms == pytest.approx(est.cycles / (mcu.clock_mhz * 1e3))
    assert est.energy_mj == pytest.approx(est.latency_ms * mcu.active_power_mw / 1000)
    doc = est.to_dict()
    assert doc["instructions"] == round(est.instructions) and doc["cycles"] == round(est.cycles)
    assert all(isinstance(l["instructions"], int) and isinstance(l["cycles"], int) for l in doc["layers"])


def test_cores_and_runtimes_without_an_instruction_model_keep_the_mac_model():
    from estimators.latency import estimate_latency

    graph = reference_model("mlperf_kws_dscnn")
    for mcu_name, runtime in [("stm32f746", "tflm-reference"), ("esp32s3", "tflm"), ("stm32g0b1", "tinyengine")]:
        mcu = load_mcu(mcu_name, MCU_DIR)
        est = estimate(graph, mcu, runtime)
        assert est.instructions is None and est.cycles is None
        assert est.latency_ms == pytest.approx(sum(estimate_latency(graph, mcu, runtime)))
        assert est.to_dict()["layers"][0]["instructions"] is None


def test_a_core_with_its_own_model_is_priced_by_it_and_the_others_by_their_class():
    """The Cortex-M7 and M33 boards by their core's own model (fitted on its firmware); the M4 and the cores without
    a model of their own by their class's."""
    from estimators.instructions import CORE_MODEL_FILES, instruction_model_for, load_instruction_model

    graph = reference_model("mlperf_vww_mobilenetv1_0.25_96")
    m7 = load_instruction_model(CORE_MODEL_FILES["cortex-m7"])
    assert m7.meta["core"] == "cortex-m7" and "mps2-an500" in m7.meta["board"]
    for board in ("stm32f746", "stm32h743"):
        mcu = load_mcu(board, MCU_DIR)
        assert instruction_model_for(mcu, "tflm").meta == m7.meta  # equal, not identical: other tests clear caches
        assert estimate(graph, mcu, "tflm").instructions == m7.graph_instructions(table_of(graph)) \
            == estimate_instructions(graph, "dsp", "cortex-m7") != estimate_instructions(graph, "dsp")
    m33 = load_instruction_model(CORE_MODEL_FILES["cortex-m33"])
    assert m33.meta["core"] == "cortex-m33" and "mps2-an505" in m33.meta["board"]
    assert instruction_model_for(load_mcu("ra6m4", MCU_DIR), "tflm").meta == m33.meta
    for board in ("stm32f412", "stm32l4r5"):  # Cortex-M4F: the class's model, fitted on the M4
        model = instruction_model_for(load_mcu(board, MCU_DIR), "tflm")
        assert "core" not in model.meta and model.isa == "dsp" and "mps2-an386" in model.meta["board"]


@pytest.mark.parametrize("board, isa", [("stm32g0b1", "armv6m"), ("rp2040", "armv6m"), ("ra8d1", "mve")])
def test_armv6m_and_mve_cores_count_instructions_by_their_class(board, isa):
    """Cortex-M0+ and M85 boards: instructions from their class's model (not the DSP one); without a published
    latency on the board (cycles_per_instruction null) latency stays on the MAC model until one is calibrated."""
    import dataclasses

    from estimators.latency import estimate_latency

    graph = reference_model("mlperf_kws_dscnn")
    mcu = load_mcu(board, MCU_DIR)
    assert mcu.instruction_class == isa
    est = estimate(graph, mcu, "tflm")
    assert est.instructions == estimate_instructions(graph, isa) != estimate_instructions(graph, "dsp")
    if mcu.cycles_per_instruction is None:
        assert est.cycles is None
        assert est.latency_ms == pytest.approx(sum(estimate_latency(graph, mcu, "tflm")))
    priced = estimate(graph, dataclasses.replace(mcu, cycles_per_instruction=2.0, fully_connected_cpi_ratio=None), "tflm")
    assert priced.cycles == 2.0 * est.instructions
    assert priced.latency_ms == pytest.approx(priced.cycles / (mcu.clock_mhz * 1e3))


def test_bad_cycles_per_instruction_is_refused():
    import dataclasses

    from estimators.mcu import MCU

    d = dataclasses.asdict(load_mcu(BOARD, MCU_DIR))
    for bad in (0, -1.5, "fast", True):
        with pytest.raises(ValueError, match="cycles_per_instruction"):
            MCU.from_dict({**d, "cycles_per_instruction": bad})
        with pytest.raises(ValueError, match="fully_connected_cpi_ratio"):
            MCU.from_dict({**d, "fully_connected_cpi_ratio": bad})
    with pytest.raises(ValueError, match="fully_connected_cpi_ratio=0.7 without cycles_per_instruction"):
        MCU.from_dict({**d, "cycles_per_instruction": None, "fully_connected_cpi_ratio": 0.7})


def test_cycles_per_instruction_on_a_core_without_an_instruction_model_is_refused(tinynas_cli):
    proc = tinynas_cli("estimate", "arch=mlperf_kws_dscnn", "mcu=esp32s3", "mcu.cycles_per_instruction=2")
    assert proc.returncode == 2 and "cycles_per_instruction=2" in proc.stderr and "xtensa-lx7" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_override_and_one_point_calibration_round_trip(tinynas_cli):
    base = ["arch=mlperf_ic_resnet8", "mcu=stm32l4r5", "runtime=tflm", "format=json"]
    one = _json(tinynas_cli("estimate", *base, "mcu.cycles_per_instruction=1", "mcu.fully_connected_cpi_ratio=1"))
    three = _json(tinynas_cli("estimate", *base, "mcu.cycles_per_instruction=3", "mcu.fully_connected_cpi_ratio=1"))
    assert three["latency_ms"] == pytest.approx(3 * one["latency_ms"])
    assert one["cycles"] == one["instructions"]
    assert one["latency_ms"] == pytest.approx(one["instructions"] / 120e3)

    cal = _json(tinynas_cli("calibrate", "arch=mlperf_ic_resnet8", "mcu=stm32l4r5", "measured_ms=704.23",
                            "format=json"))
    assert cal["instructions"] == one["instructions"] and cal["measured_ms"] == 704.23
    assert cal["cycles_per_instruction"] == pytest.approx(704.23e-3 * 120e6 / one["instructions"], rel=1e-4)
    assert cal["override"] == f"mcu.cycles_per_instruction={cal['cycles_per_instruction']}"
    priced = _json(tinynas_cli("estimate", *base, cal["override"]))
    assert priced["latency_ms"] == pytest.approx(704.23, rel=1e-4)


def test_calibrate_fits_several_points_and_prints_the_spread(tinynas_cli):
    proc = tinynas_cli("calibrate", "arch=[mlperf_kws_dscnn,mlperf_vww_mobilenetv1_0.25_96]", "mcu=ra6m4",
                       "measured_ms=[50.57,162.36]", "format=json")
    doc = _json(proc)
    cpis = [p["cycles_per_instruction"] for p in doc["points"]]
    assert doc["spread"]["min"] == min(cpis) and doc["spread"]["max"] == max(cpis)
    assert min(cpis) <= doc["cycles_per_instruction"] <= max(cpis)
    # two points: each one's leave-one-out prediction uses the other's constant
    assert doc["points"][0]["leave_one_out_error"] == pytest.approx(cpis[1] / cpis[0] - 1)
    text = tinynas_cli("calibrate", "arch=[mlperf_kws_dscnn,mlperf_vww_mobilenetv1_0.25_96]", "mcu=ra6m4",
                       "measured_ms=[50.57,162.36]")
    assert text.returncode == 0 and f"mcu.cycles_per_instruction={doc['cycles_per_instruction']}" in text.stdout


def test_calibrate_with_an_fc_heavy_model_fits_the_fc_ratio_and_its_overrides_reproduce_the_measurements(tinynas_cli):
    # the MLPerf Tiny v0.5 STM32L4R5 latencies (latency_calibration.csv) on a board with no ratio of its own
    models, measured = ["mlperf_kws_dscnn", "mlperf_ad_fc_autoencoder"], [181.92, 10.05]
    doc = _json(tinynas_cli("calibrate", f"arch=[{','.join(models)}]", "mcu=stm32l4r5",
                            "mcu.fully_connected_cpi_ratio=null", f"measured_ms=[{','.join(map(str, measured))}]",
                            "format=json"))
    assert 0.6 < doc["fully_connected_cpi_ratio"] < 0.8  # the AD model runs at 2.0 cycles per instruction, KWS 2.9
    assert doc["override"] == (f"mcu.cycles_per_instruction={doc['cycles_per_instruction']} "
                               f"mcu.fully_connected_cpi_ratio={doc['fully_connected_cpi_ratio']}")
    ad = _json(tinynas_cli("estimate", f"arch={models[1]}", "mcu=stm32l4r5", "format=json", *doc["override"].split()))
    assert ad["latency_ms"] == pytest.approx(measured[1], rel=1e-3)
    import dataclasses

    board = dataclasses.replace(load_mcu("stm32l4r5", MCU_DIR), cycles_per_instruction=doc["cycles_per_instruction"],
                                fully_connected_cpi_ratio=doc["fully_connected_cpi_ratio"])
    assert estimate(reference_model(models[0]), board, "tflm").latency_ms == pytest.approx(measured[0], rel=1e-3)


@pytest.mark.parametrize("args, words", [
    (["arch=mlperf_kws_dscnn", "mcu=stm32l4r5", "measured_ms=-3"], "measured_ms=-3"),
    (["arch=mlperf_kws_dscnn", "mcu=stm32l4r5"], "measured_ms= is required"),
    (["arch=[mlperf_kws_dscnn,mlperf_ic_resnet8]", "mcu=stm32l4r5", "measured_ms=[1.0]"], "one measured_ms per"),
    (["arch=mlperf_kws_dscnn", "mcu=stm32l4r5", "runtime=tflm-reference", "measured_ms=5"], "runtime=tflm-reference"),
    (["arch=mlperf_kws_dscnn", "mcu=esp32s3", "measured_ms=5"], "xtensa-lx7"),
    (["mcu=stm32l4r5", "measured_ms=5"], "exactly one of"),
])
def test_calibrate_bad_input_is_one_line_and_exit_2(tinynas_cli, args, words):
    proc = tinynas_cli("calibrate", *args)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- ground truth: the emulated Cortex-M4 ----------------------------------------------------------------------

@pytest.fixture(scope="session")
def emulated(mlperf_tiny, space_exports, firmware_report):
    """Firmware reports by model name: the MLPerf Tiny references and a held-out exported arch of every space."""
    paths = {**mlperf_tiny, **{name: path for name, (path, _) in space_exports.items()}}
    return {name: (path, firmware_report(path)) for name, path in paths.items()}


# The estimators' IRs of the MLPerf Tiny references, by the names of the Keras-built files (conftest.mlperf_tiny).
MLPERF_TINY = {"kws": "mlperf_kws_dscnn", "vww": "mlperf_vww_mobilenetv1_0.25_96", "ic": "mlperf_ic_resnet8",
               "ad": "mlperf_ad_fc_autoencoder"}
# Issue 18's target; measured: within 0.05% on the held-out archs, 0.16% on the references (README).
TOLERANCE = 0.01


@pytest.mark.slow
def test_estimated_instructions_match_the_emulated_firmware(emulated):
    from estimators.tflite_reader import read_tflite

    errors = {name: estimate_instructions(read_tflite(path)) / report["instructions"] - 1
              for name, (path, report) in emulated.items()}
    print("\n".join(f"{n:<24} {emulated[n][1]['instructions']:>14,} {100 * e:+6.2f}%" for n, e in errors.items()))
    assert {n: round(e, 4) for n, e in errors.items() if abs(e) > TOLERANCE} == {}


@pytest.mark.slow
def test_reference_model_irs_are_priced_like_their_firmware(emulated):
    """The estimators' own MLPerf Tiny IRs (used to calibrate cycles per instruction) give the same instructions
    as the firmware of the Keras-built references."""
    for short, name in MLPERF_TINY.items():
        got = estimate_instructions(reference_model(name))
        assert got == pytest.approx(emulated[short][1]["instructions"], rel=TOLERANCE), name


@pytest.mark.slow
def test_search_space_irs_are_priced_like_their_exported_firmware(space_exports, emulated):
    """What a search prices (the space's IR, built without PyTorch) matches the exported model's firmware."""
    for name, (_, ir) in space_exports.items():
        assert estimate_instructions(ir) == pytest.approx(emulated[name][1]["instructions"], rel=TOLERANCE), name


@pytest.mark.slow
@pytest.mark.parametrize("model_of", ["armv6m", "mve", "cortex-m7", "cortex-m33"])
def test_class_and_core_models_match_their_emulated_firmware(mlperf_tiny, space_exports, firmware_report, model_of):
    """The ARMv6-M model against Cortex-M0+ firmware (mps2-an385), the MVE model against Cortex-M55 firmware
    (mps3-an547, Helium kernels), the Cortex-M7's and M33's own models against their firmware (mps2-an500,
    mps2-an505: the M4's kernels as GCC builds them for that core, up to 1.2% apart from the M4's counts), on the
    same held-out archs and references as the DSP class; each priced by the model its board's estimates use."""
    from estimators.instructions import instruction_model_for
    from estimators.tflite_reader import read_tflite
    from tests.conftest import target_benchmark

    bench = target_benchmark()
    board = {**bench.BOARDS, **bench.CORE_BOARDS}[model_of]
    model = instruction_model_for(load_mcu(board, MCU_DIR), "tflm")
    assert model.meta.get("core", model.isa) == model_of
    paths = {**mlperf_tiny, **{name: path for name, (path, _) in space_exports.items()}}
    counted = {name: firmware_report(path, board)["instructions"] for name, path in paths.items()}
    errors = {name: model.graph_instructions(table_of(read_tflite(path))) / counted[name] - 1
              for name, path in paths.items()}
    print("\n".join(f"{model_of} {n:<24} {counted[n]:>14,} {100 * e:+6.2f}%" for n, e in errors.items()))
    assert {n: round(e, 4) for n, e in errors.items() if abs(e) > TOLERANCE} == {}
    # What a search prices: the spaces' own IRs and the estimators' MLPerf Tiny IRs, against the same firmware.
    irs = {**{name: ir for name, (_, ir) in space_exports.items()},
           **{short: reference_model(name) for short, name in MLPERF_TINY.items()}}
    ir_errors = {name: model.graph_instructions(table_of(ir)) / counted[name] - 1 for name, ir in irs.items()}
    assert {n: round(e, 4) for n, e in ir_errors.items() if abs(e) > TOLERANCE} == {}
