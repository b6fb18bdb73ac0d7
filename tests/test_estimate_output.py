"""`tinynas estimate`'s text table: units said, the peak layer marked, n/a where a figure does not apply."""

from __future__ import annotations

import re

import pytest

from estimators import estimate, load_mcu
from estimators.reference_models import reference_model
from tinynas.commands.estimate import table
from tinynas.experiments import MCU_DIR


@pytest.fixture(scope="module")
def kws():
    return reference_model("mlperf_kws_dscnn")


def _rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\s*\d+\s{2}\S", line)]


def test_units_and_live_column_are_explained(kws):
    text = table(estimate(kws, load_mcu("stm32f746", MCU_DIR), "tflm"))
    assert "kB = 1024 bytes" in text
    assert "live: activation bytes held in SRAM while the layer runs" in text


@pytest.mark.parametrize("runtime", ["tflm", "tinyengine"])
def test_peak_memory_layer_is_marked(kws, runtime):
    est = estimate(kws, load_mcu("stm32f746", MCU_DIR), runtime)
    rows = _rows(table(est))
    assert len(rows) == len(est.layers)
    live = [layer.live_bytes for layer in est.layers]
    marked = [i for i, row in enumerate(rows) if "kB*" in row]
    assert marked == [live.index(max(live))]


def test_host_prints_na_where_a_figure_does_not_apply(kws):
    host = load_mcu("host", MCU_DIR)
    est = estimate(kws, host, "tflm")
    assert est.fits is None and est.to_dict()["fits"] is None
    text = table(est, host)
    assert "fits        n/a (no budget)" in text and "False" not in text
    assert "latency     n/a" in text and "energy      n/a" in text and "0.00 ms" not in text
    assert all(row.rstrip().endswith("n/a") for row in _rows(text))


def test_a_board_with_budgets_prints_figures_and_a_verdict(kws):
    board = load_mcu("stm32f746", MCU_DIR)
    est = estimate(kws, board, "tflm")
    text = table(est, board)
    assert est.fits is True and "fits        True" in text
    assert f"latency     {est.latency_ms:,.2f} ms" in text and "n/a" not in text


def test_slowest_layer_is_marked_after_its_ms(kws):
    board = load_mcu("stm32f746", MCU_DIR)
    est = estimate(kws, board, "tflm")
    rows = _rows(table(est, board))
    ms = [layer.latency_ms for layer in est.layers]
    assert [i for i, row in enumerate(rows) if row.rstrip().endswith("*")] == [ms.index(max(ms))]
