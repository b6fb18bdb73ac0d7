"""Latency model against the published latencies it is calibrated on, and its structural promises."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from estimators.builder import GraphWriter
from estimators.latency import (DATA_DIR, core_family, estimate_latency, graph_terms, load_latency_model)
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
