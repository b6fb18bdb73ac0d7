"""`tinynas rank_space` (MCUNet's first stage): every (width, resolution) sub-space is ranked by the MACs of
its random archs that fit; a sub-space whose smallest arch misses the budget has none; the best one is
printed as a search-space override."""

import json

import pytest

from estimators import MCU, estimate
from search_spaces import get_space
from tinynas.commands.rank_space import rank_subspaces
from tinynas.errors import ConfigError
from tinynas.search import Budgets

OPTIONS = {"resolutions": [8, 16, 24], "widths": [0.3, 0.5, 1.0], "depth_choices": [1], "head_channels": 64}
MCU_ = MCU("tiny", "board", "cortex-m4f", 100, 64 * 1024, 64 * 1024, 50.0)


def smallest_sram(width, resolution):
    space = get_space("mcunet", {**OPTIONS, "widths": [width], "resolutions": [resolution]})
    return estimate(space.to_ir(space.smallest(), 1, 10), MCU_, "tflm").sram.total_bytes


def test_without_a_binding_budget_the_biggest_subspace_wins():
    rows = rank_subspaces("mcunet", OPTIONS, MCU_, "tflm", Budgets(10**9, 10**9), 1, 10, n=8)
    assert {(r["width"], r["resolution"]) for r in rows} == {(w, r) for w in OPTIONS["widths"]
                                                             for r in OPTIONS["resolutions"]}
    assert all(r["n_fit"] == 8 for r in rows)
    assert (rows[0]["width"], rows[0]["resolution"]) == (1.0, 24)
    assert (rows[-1]["width"], rows[-1]["resolution"]) == (0.3, 8)
    assert [r["mean_macs"] for r in rows] == sorted((r["mean_macs"] for r in rows), reverse=True)


def test_a_subspace_whose_smallest_arch_misses_the_budget_has_no_fitting_arch():
    # SRAM budget just below the smallest arch of (1.0, 24): that sub-space cannot win any more.
    budget = smallest_sram(1.0, 24) - 1
    rows = rank_subspaces("mcunet", OPTIONS, MCU_, "tflm", Budgets(budget, 10**9), 1, 10, n=8)
    by = {(r["width"], r["resolution"]): r for r in rows}
    assert by[(1.0, 24)]["n_fit"] == 0
    fitting = [r["n_fit"] > 0 for r in rows]
    assert fitting == sorted(fitting, reverse=True)  # sub-spaces with nothing that fits rank last
    assert by[(0.3, 8)]["n_fit"] == 8  # far below the budget
    assert rows[0]["n_fit"] > 0 and (rows[0]["width"], rows[0]["resolution"]) != (1.0, 24)


def test_bad_options_are_named():
    with pytest.raises(ConfigError, match="rank_by='p99' is unknown; allowed: mean, p50, p80"):
        rank_subspaces("mcunet", OPTIONS, MCU_, "tflm", Budgets(1, 1), 1, 10, rank_by="p99")
    with pytest.raises(ConfigError, match="search space 'dscnn' has no widths and resolutions"):
        rank_subspaces("dscnn", {}, MCU_, "tflm", Budgets(1, 1), 1, 10)


def test_cli_prints_json_and_writes_the_override(tinynas_cli, tmp_path):
    opts = ["search_space.options.resolutions=[8,16]", "search_space.options.widths=[0.3,1.0]",
            "search_space.options.depth_choices=[1]", "n=4", "format=json", f"out={tmp_path / 'r.json'}",
            f"override={tmp_path / 'best.yaml'}"]
    p = tinynas_cli("rank_space", *opts)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc == json.loads((tmp_path / "r.json").read_text())
    assert len(doc["subspaces"]) == 4 and doc["mcu"] == "stm32f446"
    best = doc["best"]
    assert best["override"] == (f"search_space.options.widths=[{best['width']}] "
                                f"search_space.options.resolutions=[{best['resolution']}]")
    assert f"widths: [{best['width']}]" in (tmp_path / "best.yaml").read_text()
