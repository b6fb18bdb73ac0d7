"""The MCU catalogue (conf/mcu/*.yaml) against the reference table it must cover (shared/reference/mcus.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from estimators.mcu import MCU, catalogue, load_mcu

ROOT = Path(__file__).resolve().parents[1]
MCU_DIR = ROOT / "conf" / "mcu"
SHARED_CSV = ROOT.parent / "shared" / "reference" / "mcus.csv"
# The reference table as the project ships it (a copy of shared/reference/mcus.csv, checked below when present).
CSV = ROOT / "estimators" / "data" / "mcus.csv"

pytestmark = pytest.mark.skipif(not CSV.is_file(), reason=f"reference table {CSV} not present")


def _rows() -> list[dict[str, str]]:
    with open(CSV) as f:
        return list(csv.DictReader(f))


def test_every_csv_board_has_a_yaml_and_nothing_else():
    names = {r["name"] for r in _rows()}
    assert set(catalogue(MCU_DIR)) == names


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["name"])
def test_yaml_values_equal_the_csv(row):
    mcu = load_mcu(row["name"], MCU_DIR)
    assert mcu.name == row["name"]
    assert mcu.board == row["board"]
    assert mcu.core == row["core"]
    assert mcu.clock_mhz == float(row["clock_mhz"])
    assert mcu.sram_bytes == round(float(row["sram_kb"]) * 1024)
    assert mcu.flash_bytes == round(float(row["flash_kb"]) * 1024)
    assert mcu.pointer_bytes == (8 if row["core"].startswith("x86_64") else 4)


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["name"])
def test_every_yaml_cites_sources(row):
    mcu = load_mcu(row["name"], MCU_DIR)
    for field in ("clock_mhz", "sram_bytes", "flash_bytes", "active_power_mw"):
        assert mcu.sources.get(field, "").strip(), f"{row['name']}: no source for {field}"


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["name"])
def test_power_is_positive_on_real_boards(row):
    mcu = load_mcu(row["name"], MCU_DIR)
    if row["name"] == "host":
        assert mcu.active_power_mw == 0 and mcu.sram_bytes == 0 and mcu.flash_bytes == 0
    else:
        # Run-mode power of these MCUs lies between ~1 mW and ~1 W; a unit slip (W, µW, mA) lands outside.
        assert 1.0 < mcu.active_power_mw < 1000.0


def test_unknown_board_names_the_known_ones():
    with pytest.raises(ValueError, match="stm32f746"):
        load_mcu("stm32f999", MCU_DIR)


def test_yaml_keys_are_exactly_the_dataclass_fields():
    import dataclasses

    import yaml

    fields = {f.name for f in dataclasses.fields(MCU)}
    for path in MCU_DIR.glob("*.yaml"):
        assert set(yaml.safe_load(path.read_text())) == fields, path.name


def test_shipped_mcus_csv_is_the_shared_reference():
    if not SHARED_CSV.is_file():
        pytest.skip("shared/reference is not beside this checkout")
    assert CSV.read_bytes() == SHARED_CSV.read_bytes()
