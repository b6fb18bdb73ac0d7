"""Latency model against the published latencies it is calibrated on, and its structural promises."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from estimators.builder import GraphWriter
from estimators.latency import (DATA_DIR, core_family, estimate_latency, fit_cycles_per_instruction,
                                fully_connected_instructions, graph_terms, load_latency_model,
                                published_runtime_instructions)
from estimators.mcu import MCU, load_mcu
from estimators.reference_models import reference_model

ROOT = Path(__file__).resolve().parents[1]
MCU_DIR = ROOT / "conf" / "mcu"


def _rows() -> list[dict[str, str]]:
    with open(DATA_DIR / "latency_calibration.csv") as f:
        return list(csv.DictReader(f))


def _estimate_ms(row: dict[str, str]) -> float:
    return sum(estimate_latency(reference_model(row["model"]), load_mcu(row["mcu"], MCU_DIR), row["runtime"]))


@pytest.mark.parametrize("row", _rows(), ids=lambda r: f"{r['mcu']}-{r['model'].split()[0]}")
def test_published_latency_within_35_percent(row):
    assert _estimate_ms(row) == pytest.approx(float(row["latency_ms"]), rel=0.35)


def test_mean_error_on_published_points_below_15_percent():
    errs = [abs(_estimate_ms(r) / float(r["latency_ms"]) - 1) for r in _rows()]
    assert sum(errs) / len(errs) < 0.15


def test_shipped_copy_of_calibration_csv_matches_reference():
    ref = ROOT.parent / "shared" / "reference" / "latency_calibration.csv"
    if not ref.is_file():
        pytest.skip("shared reference not present")
    assert (DATA_DIR / "latency_calibration.csv").read_text() == ref.read_text()


def test_coefficients_yaml_is_the_fit_of_the_shipped_data():
    spec = importlib.util.spec_from_file_location("latency_calibration", ROOT / "benchmarks" / "latency_calibration.py")
    cal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cal)
    fresh, stored = cal.fit(cal.load_points()), load_latency_model()
    assert fresh.element_cycles == pytest.approx(stored.element_cycles, rel=1e-4)
    assert fresh.scale.keys() == stored.scale.keys()
    for key in fresh.scale:
        assert fresh.scale[key] == pytest.approx(stored.scale[key], rel=1e-4)


def _board(core: str, clock: float = 100.0) -> MCU:
    return MCU("test", "test", core, clock, 1, 1, 1.0)


def test_one_latency_per_op_summing_to_the_graph_model():
    g = reference_model("mlperf_kws_dscnn")
    mcu = load_mcu("stm32l4r5", MCU_DIR)
    per_op = estimate_latency(g, mcu, "tflm")
    assert len(per_op) == len(g.ops)
    whole = load_latency_model().cycles(graph_terms(g), "cortex-m4", "tflm") / (mcu.clock_mhz * 1e3)
    assert sum(per_op) == pytest.approx(whole)


def test_depthwise_costs_more_per_mac_than_pointwise():
    g = GraphWriter("t", (24, 24, 64))
    dw = g.depthwise_conv2d(g.graph.inputs[0], 3)
    g.conv2d(dw, 64, 1)
    graph = g.finish(g.graph.ops[-1].outputs[0])
    for core in ("cortex-m4f", "cortex-m7", "cortex-m33", "cortex-m85"):
        ms = estimate_latency(graph, _board(core), "tflm")
        dw_macs, pw_macs = 24 * 24 * 64 * 9, 24 * 24 * 64 * 64
        assert ms[0] / dw_macs > ms[1] / pw_macs, core


def test_runtime_and_core_ordering():
    g = reference_model("mcunet-5fps")
    ms = lambda core, rt: sum(estimate_latency(g, _board(core), rt))  # noqa: E731
    assert ms("cortex-m4f", "tflm-reference") > ms("cortex-m4f", "tflm")
    assert ms("cortex-m7", "tinyengine") < ms("cortex-m7", "tflm")
    assert ms("cortex-m0plus", "tflm") > ms("cortex-m4f", "tflm")  # same clock, lower IPC, no SIMD
    assert ms("cortex-m4f", "analytic") == ms("cortex-m4f", "tinyengine")


def test_every_catalogue_board_gets_a_latency():
    g = reference_model("mlperf_kws_dscnn")
    for path in sorted(MCU_DIR.glob("*.yaml")):
        mcu = load_mcu(path.stem, MCU_DIR)
        for runtime in ("tflm-reference", "tflm", "tinyengine", "analytic"):
            ms = estimate_latency(g, mcu, runtime)
            assert all(v >= 0 for v in ms)
            assert (sum(ms) == 0) == (mcu.clock_mhz == 0), mcu.name


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="z80"):
        core_family("z80")
    with pytest.raises(ValueError, match="tvm"):
        estimate_latency(reference_model("mlperf_kws_dscnn"), _board("cortex-m4f"), "tvm")


# -- the instruction model's cycles (runtime=tflm on DSP-class cores) against the published points ----------
def _instruction_points(own_runtime: bool = True) -> dict[str, list[tuple[str, float, int, int]]]:
    """Published DSP-class tflm points by board: (model, cycles = latency × clock, instructions, FC instructions);
    the instructions of the setup's own runtime where it was counted (published_runtime_instructions.csv) and
    ``own_runtime``, else the pinned runtime's (the instruction model of the board's core)."""
    from estimators.instructions import instruction_model_for
    from estimators.table import table_of

    points = {}
    own = published_runtime_instructions() if own_runtime else {}
    for r in _rows():
        mcu = load_mcu(r["mcu"], MCU_DIR)
        if r["runtime"] != "tflm" or mcu.kernel_isa != "dsp":
            continue
        model, table = instruction_model_for(mcu, "tflm"), table_of(reference_model(r["model"]))
        n, fc = own.get((r["mcu"], r["model"])) or (model.graph_instructions(table),
                                                     fully_connected_instructions(model, table))
        points.setdefault(r["mcu"], []).append((r["model"], float(r["latency_ms"]) * float(r["clock_mhz"]) * 1e3,
                                                n, fc))
    return points


# Conv model to conv model, one calibration point each: the largest error the published setups show (MLPerf
# Tiny v0.5 STM32L4R5 6.8%, MicroNets STM32F746 6.5%; the v0.7 RA6M4, priced by the instructions of the runtime
# it ran, 10.6%: ResNet-8 at 1.35 cycles per instruction against 1.22–1.27 for the depthwise-separable models).
ONE_POINT_TOLERANCE = {"stm32l4r5": 0.08, "stm32f746": 0.08, "ra6m4": 0.11}


def test_the_ra6m4_setups_own_runtime_explains_half_its_spread():
    """Priced by the pinned runtime's instructions, the RA6M4's ResNet-8 ran at 1.65 cycles per instruction against
    1.34 for the DS-CNN; its own 2021 runtime executes 22% more instructions on ResNet-8 and 9% more on DS-CNN,
    which brings the spread of its conv models' rates from 23% to under 11%."""
    for own, spread in ((False, (0.20, 0.30)), (True, (0.0, 0.11))):
        rates = [c / n for model, c, n, fc in _instruction_points(own)["ra6m4"] if 2 * fc <= n]
        assert spread[0] < max(rates) / min(rates) - 1 < spread[1], (own, rates)


def test_counted_setups_are_calibration_points():
    rows = {(r["mcu"], r["model"]) for r in _rows() if r["runtime"] == "tflm"}
    own = published_runtime_instructions()
    assert own and set(own) <= rows
    for (mcu, model), (n, fc) in own.items():
        assert 0 <= fc <= n


@pytest.mark.parametrize("board", sorted(ONE_POINT_TOLERANCE))
def test_one_point_calibration_predicts_the_setups_other_conv_models(board):
    conv = [p for p in _instruction_points()[board] if 2 * p[3] <= p[2]]
    assert len(conv) == 3
    for model, cycles, n, fc in conv:
        cpi, ratio = fit_cycles_per_instruction([(cycles, n, fc)])
        assert ratio is None and cpi == pytest.approx(cycles / n)
        for other, other_cycles, other_n, _ in conv:
            assert cpi * other_n == pytest.approx(other_cycles, rel=ONE_POINT_TOLERANCE[board]), (model, other)


@pytest.mark.parametrize("board", sorted(ONE_POINT_TOLERANCE))
def test_board_constants_are_the_fit_of_their_published_points(board):
    mcu = load_mcu(board, MCU_DIR)
    cpi, ratio = fit_cycles_per_instruction([p[1:] for p in _instruction_points()[board]])
    assert mcu.cycles_per_instruction == pytest.approx(cpi, abs=6e-4)
    assert mcu.fully_connected_cpi_ratio == pytest.approx(ratio, abs=6e-4)


def test_estimates_of_the_published_tflm_points_within_6_percent():
    """In-sample: each board's two constants against its own published points (the worst: RA6M4 ResNet-8, −5.4%;
    priced by the pinned runtime's instructions it was −12.6%). The STM32L4R5's FC-only AD model runs at 0.69× the
    conv models' cycles per instruction: one constant for both was 44% off on it (the leave-one-out figures:
    benchmarks/latency_calibration.py). A point whose setup's own runtime was counted is priced by those
    instructions; the others by `estimate` (the pinned runtime)."""
    from estimators import estimate

    own = published_runtime_instructions()
    for board, points in _instruction_points().items():
        mcu = load_mcu(board, MCU_DIR)
        for model, cycles, n, fc in points:
            if (board, model) in own:
                priced = (n + (mcu.fully_connected_cpi_ratio - 1) * fc) * mcu.cycles_per_instruction
            else:
                priced = estimate(reference_model(model), mcu, "tflm").cycles
            assert priced == pytest.approx(cycles, rel=0.06), (board, model)


def test_fit_recovers_a_rate_and_an_fc_ratio_and_keeps_a_given_ratio_without_an_fc_heavy_point():
    points = [(2.5 * (n + (0.6 - 1) * f), n, f) for n, f in [(1_000_000, 10), (3_000_000, 0), (50_000, 49_000)]]
    cpi, ratio = fit_cycles_per_instruction(points)
    assert (cpi, ratio) == (pytest.approx(2.5), pytest.approx(0.6))
    conv_only = points[:2]
    assert fit_cycles_per_instruction(conv_only) == (pytest.approx(2.5, rel=1e-5), None)
    assert fit_cycles_per_instruction(conv_only, 0.6) == (pytest.approx(2.5), 0.6)
