"""pareto.png follows the objectives: the chosen pairs, each with its own non-dominated front, the budgets of
its axes, and a legend that covers no point. Tested on the data the plot is drawn from and its artists."""

from __future__ import annotations

import itertools

import numpy as np
import optuna
import pytest

from tinynas.report import draw_pareto, pareto_panels

KB = 1024
# (accuracy, sram kB, latency ms); the dip: 0.555 → 0.489 → 0.64 along SRAM.
SCORED = [(0.555, 40, 150.0), (0.489, 50, 60.0), (0.64, 60, 90.0), (0.60, 45, 80.0), (0.30, 30, 40.0),
          (0.50, 70, 200.0)]
OVER = [(0.0, 400, 30.0), (0.0, 80, 500.0)]
BUDGETS = {"sram_bytes": 320 * KB, "flash_bytes": 1024 * KB, "latency_ms": 100.0}


def _trial(number, acc, sram_kb, ms, infeasible=None):
    attrs = {"accuracy": acc, "sram_bytes": sram_kb * KB, "flash_bytes": 500 * KB, "latency_ms": ms,
             "energy_mj": ms / 10, "macs": 1_000_000, "params": 1000, "scored": infeasible is None}
    if infeasible:
        attrs["infeasible"] = infeasible
    t = optuna.trial.create_trial(values=[acc, ms], user_attrs=attrs)
    t.number = number
    return t


@pytest.fixture
def trials():
    out = [_trial(i, *p) for i, p in enumerate(SCORED)]
    out += [_trial(len(SCORED) + i, *p, infeasible="latency" if p[2] > 100 else "sram") for i, p in enumerate(OVER)]
    return out


def _brute_front(points, sx, sy):
    """Non-dominated (trial, x, y) by exhaustive comparison (sx, sy: +1 larger is better, -1 smaller)."""
    keep = []
    for p in points:
        if not any(sx * q[1] >= sx * p[1] and sy * q[2] >= sy * p[2] and q[1:] != p[1:] for q in points):
            keep.append(p)
    return sorted(keep, key=lambda p: (p[1], p[2]))


def test_accuracy_latency_plots_latency_with_its_budget_only(trials):
    (panel,) = pareto_panels(trials, ["accuracy", "latency"], BUDGETS)
    assert (panel.x, panel.y) == ("latency", "accuracy")
    assert panel.budgets == {"latency": 100.0}  # the SRAM budget is no axis here
    assert sorted(panel.scored) == sorted((i, ms, acc) for i, (acc, _, ms) in enumerate(SCORED))
    assert [p[1] for p in panel.over_budget] == [30.0, 500.0] and all(p[2] == 0 for p in panel.over_budget)
    assert list(panel.front) == _brute_front(list(panel.scored), -1, +1)
    accs = [p[2] for p in panel.front]
    assert accs == sorted(accs) and len(set(accs)) == len(accs)  # a front never dips


def test_sram_front_has_no_dip(trials):
    (panel,) = pareto_panels(trials, ["accuracy", "sram"], BUDGETS)
    assert (panel.x, panel.y) == ("sram", "accuracy") and panel.budgets == {"sram": 320.0}
    assert [p[2] for p in panel.front] == [0.30, 0.555, 0.60, 0.64]  # 0.489 @ 50 kB is dominated by 0.60 @ 45 kB
    assert list(panel.front) == _brute_front(list(panel.scored), -1, +1)


def test_three_objectives_give_one_panel_per_pair(trials):
    objectives = ["accuracy", "sram", "latency"]
    panels = pareto_panels(trials, objectives, BUDGETS)
    assert [(p.x, p.y) for p in panels] == [("sram", "accuracy"), ("latency", "accuracy"), ("sram", "latency")]
    assert len(panels) == len(list(itertools.combinations(objectives, 2)))
    cost = panels[2]
    assert cost.budgets == {"sram": 320.0, "latency": 100.0}
    assert list(cost.front) == _brute_front(list(cost.scored), -1, -1)


def test_figure_draws_the_panels_data_and_keeps_the_legend_off_the_points(trials):
    import matplotlib.pyplot as plt

    panels = pareto_panels(trials, ["accuracy", "sram", "latency"], BUDGETS, deployed=2)
    fig = draw_pareto(panels, "t")
    try:
        axes = fig.axes
        assert len(axes) == 3
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (legend,) = fig.legends
        box = legend.get_window_extent(renderer)
        for ax, p in zip(axes, panels):
            assert ax.get_xlabel().endswith({"sram": "(kB)", "latency": "(ms)"}[p.x])
            front = next(line for line in ax.get_lines() if line.get_label().startswith("Pareto front"))
            assert np.allclose(front.get_xdata(), [q[1] for q in p.front])
            assert np.allclose(front.get_ydata(), [q[2] for q in p.front])
            budget_lines = [line for line in ax.get_lines() if line.get_label().endswith("budget")]
            assert sorted(line.get_label() for line in budget_lines) == sorted(f"{o} budget" for o in p.budgets)
            assert not box.overlaps(ax.get_window_extent(renderer))  # the legend lies outside every panel
            shown = [tuple(xy) for c in ax.collections for xy in c.get_offsets()]
            for q in (*p.scored, *p.over_budget):
                assert (q[1], q[2]) in shown
        assert panels[0].deployed == (2, 60.0, 0.64)
    finally:
        plt.close(fig)


def test_plot_pareto_writes_the_png(trials, tmp_path):
    from tinynas.report import plot_pareto

    path = plot_pareto(tmp_path / "p.png", trials, ["accuracy", "latency"], BUDGETS, title="x")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
