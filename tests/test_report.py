"""`tinynas report`: the json contract over a hand-built study whose counts, front and hypervolume are known,
and the html page."""

import json

import optuna
import pytest
from optuna.trial import TrialState

from tinynas.storage import make_storage

BUDGETS = {"sram_bytes": 128 * 1024, "flash_bytes": 512 * 1024, "latency_ms": None}
# (accuracy, SRAM bytes, scored): trials 0 and 1 form the front; 2 is dominated by 1; 3 is over the SRAM budget.
# Trials 0 and 2 say "trained" as studies written before the evaluators did; 1 and 3 say "scored".
COMPLETE = [(0.9, 60 * 1024, True), (0.8, 30 * 1024, True), (0.7, 40 * 1024, True), (0.0, 200 * 1024, False)]


def candidate(trial, acc, sram, scored):
    arch = {"space": "mcunet", "resolution": 8, "width": 0.5}
    attrs = {"arch": arch, "arch_hash": f"h{trial.number}", "accuracy": acc, "sram_bytes": sram,
             "flash_bytes": 100_000, "latency_ms": 5.0, "energy_mj": 0.1, "macs": 10**6, "params": 20_000,
             "trained" if trial.number % 2 == 0 else "scored": scored}
    if sram > BUDGETS["sram_bytes"]:
        attrs["infeasible"] = "sram"
    for k, v in attrs.items():
        trial.set_user_attr(k, v)
    trial.set_constraint("sram", sram / BUDGETS["sram_bytes"] - 1)
    trial.set_constraint("flash", attrs["flash_bytes"] / BUDGETS["flash_bytes"] - 1)
    return acc, sram


@pytest.fixture
def study_url(tmp_path):
    url = f"journal://{tmp_path / 'r.journal'}"
    storage, _ = make_storage(url, tmp_path)
    study = optuna.create_study(study_name="r", storage=storage, directions=["maximize", "minimize"])
    study.set_user_attr("settings", {"objectives": ["accuracy", "sram"], "budgets": BUDGETS, "mcu": "nrf52840",
                                     "runtime": "tflm", "search_space": "mcunet"})
    for acc, sram, scored in COMPLETE:
        t = study.ask()
        study.tell(t, candidate(t, acc, sram, scored))
    study.tell(study.ask(), state=TrialState.FAIL)
    pruned = study.ask()  # stopped by successive halving: figures and a low-fidelity accuracy, never on the front
    candidate(pruned, 0.95, 10 * 1024, False)
    pruned.set_user_attr("rung_accuracies", {"1": 0.95})
    study.tell(pruned, state=TrialState.PRUNED)
    study.ask()  # left RUNNING
    study.enqueue_trial({})  # WAITING
    return url


def test_json_contract_counts_front_and_hypervolume(tinynas_cli, study_url):
    p = tinynas_cli("report", f"storage={study_url}", "study_name=r", "format=json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert set(doc) == {"study", "n_trials", "states", "n_infeasible", "pareto", "hypervolume"}
    assert doc["study"] == "r" and doc["n_trials"] == 6  # as n_trials= counts: not the RUNNING or WAITING ones
    assert doc["states"] == {"COMPLETE": 4, "PRUNED": 1, "FAIL": 1, "RUNNING": 1, "WAITING": 1}
    assert doc["n_infeasible"] == 1
    assert [r["trial"] for r in doc["pareto"]] == [0, 1]
    # Losses (1 - acc, SRAM / budget) = (0.1, 0.46875) and (0.2, 0.234375), reference point (1, 1):
    # 0.9 * (1 - 0.46875) + 0.8 * (0.46875 - 0.234375) = 0.665625.
    assert doc["hypervolume"] == pytest.approx(0.665625)


def test_html_page_has_the_front_and_plots(tinynas_cli, study_url, tmp_path):
    p = tinynas_cli("report", f"storage={study_url}", "study_name=r", "format=html", f"out={tmp_path / 'rep'}")
    assert p.returncode == 0, p.stderr
    page = tmp_path / "rep" / "report.html"
    assert p.stdout.strip() == str(page.resolve())
    html = page.read_text()
    assert "<h1>Study r</h1>" in html and "hypervolume 0.6656" in html
    assert "<tr><td>0</td><td><code>h0</code></td>" in html and "<td>0.900</td><td>60.0</td>" in html
    assert "<tr><td>1</td><td><code>h1</code></td>" in html and "<td>0.800</td>" in html
    assert "<td>0.700</td>" not in html  # dominated: not in the front table
    assert html.count('class="plotly-graph-div"') == 3  # accuracy vs SRAM, hypervolume over trials, timeline
    assert "hypervolume over trials" in html
    assert "cdn.plot.ly" not in html.split("<script")[1][:200]  # plotly.js inlined: opens offline


def test_unknown_study_and_format(tinynas_cli, study_url):
    p = tinynas_cli("report", f"storage={study_url}", "study_name=nope")
    assert p.returncode != 0 and "study_name='nope' is not in" in p.stderr and "r" in p.stderr
    p = tinynas_cli("report", f"storage={study_url}", "study_name=r", "format=pdf")
    assert p.returncode != 0 and "allowed: json, md, html" in p.stderr


def test_hypervolume_history_grows_only_with_feasible_scored_trials(study_url, tmp_path):
    """Trial 0 alone: 0.9 × (1 − 0.46875) = 0.478125; trial 1 adds the rest of 0.665625; the dominated, the
    over-budget, the failed, the pruned and the unfinished trials add nothing."""
    from tinynas.commands.report import hypervolume_history

    storage, _ = make_storage(study_url, tmp_path)
    history = hypervolume_history(optuna.load_study(study_name="r", storage=storage))
    assert [n for n, _ in history] == list(range(8))
    assert [v for _, v in history] == pytest.approx([0.478125] + [0.665625] * 7)


def test_html_page_says_what_the_study_is_about(tinynas_cli, study_url, tmp_path):
    """Board, runtime, space, objectives and budgets; each front row's arch and hash; colour bars that say
    they show trial numbers; plotly.js embedded once."""
    import re

    p = tinynas_cli("report", f"storage={study_url}", "study_name=r", "format=html", f"out={tmp_path}")
    assert p.returncode == 0, p.stderr
    html = (tmp_path / "report.html").read_text()
    about = re.search(r'<ul class="settings">(.*?)</ul>', html)[1]
    assert "MCU: nrf52840" in about and "runtime: tflm" in about and "search space: mcunet" in about
    assert "objectives: accuracy (max), sram (min)" in about
    assert "SRAM 128.0 kB" in about and "flash 512.0 kB" in about and "latency none" in about
    header = re.search(r"<h2>Pareto front.*?</tr>", html, re.S)[0]
    assert "<th>arch hash</th><th>arch</th>" in header
    assert '<td style="text-align:left">mcunet: resolution 8 width 0.5</td>' in html
    assert "Best Trial" not in html
    titles = re.findall(r'"colorbar":\{"title":\{"text":"([^"]*)"', html)
    assert titles and all(t.startswith("trial number") for t in titles)
    scripts = [len(s) for s in re.findall(r"<script[^>]*>(.*?)</script>", html, re.S)]
    assert sum(n > 1_000_000 for n in scripts) == 1  # the plotly.js bundle, once
    assert html.count("window.PlotlyConfig") == 1


def test_markdown_says_what_the_study_is_about(tinynas_cli, study_url):
    p = tinynas_cli("report", f"storage={study_url}", "study_name=r", "format=md")
    assert p.returncode == 0, p.stderr
    assert "- MCU: nrf52840; runtime: tflm; search space: mcunet" in p.stdout
    assert "- objectives: accuracy (max), sram (min)" in p.stdout
