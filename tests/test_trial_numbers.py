"""One trial numbering everywhere: the console, summary.md and results.json name a trial by Optuna's trial number
with its arch hash, and a study resumed after a worker died counts the retry as a retry (n_trials as asked,
n_retried apart), without Optuna's "constraint ... already set" warning."""

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.test_workers import TRIAL_LINE, finish, load, start_search
from tinynas.storage import WORKER_ATTR, make_storage, worker_mark

pytestmark = pytest.mark.slow


def leave_a_dead_trial(storage_url: str, study_name: str, tmp_path: Path) -> int:
    """What a worker killed mid-trial leaves: a RUNNING trial with drawn params, constraint values and the
    mark of a process that is gone."""
    storage, _ = make_storage(storage_url, tmp_path)
    study = optuna.load_study(study_name=study_name, storage=storage,
                              sampler=optuna.samplers.RandomSampler(seed=123))
    t = study.ask(fixed_distributions=study.trials[0].distributions)
    t.set_constraint("sram", -0.5)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    t.set_user_attr(WORKER_ATTR, {**worker_mark(t.number), "pid": p.pid})
    return t.number


def test_console_summary_and_results_agree_after_a_retry(tmp_path):
    storage, study, run = f"journal://{tmp_path / 'n.journal'}", "n", "numbers"
    finish(start_search(tmp_path, storage, study, 3, run), tmp_path, run)
    dead = leave_a_dead_trial(storage, study, tmp_path)
    out = finish(start_search(tmp_path, storage, study, 5, run), tmp_path, run)
    log = (tmp_path / f"{run}.log").read_text()
    assert "already set" not in log  # the retry sets its own constraints once
    assert "trial 0: epoch 1/1  loss " in log  # a search trial's training reports its epochs too

    trials = load(storage, study, tmp_path)
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == dead]
    assert trials[dead].state == TrialState.FAIL and len(retry) == 1 and retry[0].state == TrialState.COMPLETE

    # Console: one line per trial run, named by Optuna's number, its hash, [done/total]; the retry says so.
    lines = list(TRIAL_LINE.finditer(log))
    assert sorted(int(m.group(1)) for m in lines) == [t.number for t in trials if t.state == TrialState.COMPLETE]
    for m in lines:
        t = trials[int(m.group(1))]
        assert t.user_attrs["arch_hash"].startswith(m.group(3))
        assert m.group(6) is None or float(m.group(6)) == round(t.user_attrs["accuracy"], 3)
        assert (m.group(2) is not None) == (t is retry[0]) and (m.group(2) is None or int(m.group(2)) == dead)
    # One worker: done counts up to n_trials, across the resume (its log holds both runs: n_trials=3, then 5).
    assert [(int(m.group(4)), int(m.group(5))) for m in lines] == [(1, 3), (2, 3), (3, 3), (4, 5), (5, 5)]

    # results.json: the study's count is what n_trials= asked for; the retried attempt is no trial of its own.
    results = json.loads(Path(out.strip().splitlines()[-1]).read_text())
    counts = results["study"]
    assert (counts["n_trials"], counts["n_retried"], counts["n_failed"]) == (5, 1, 0)
    assert counts["n_complete"] == 5 and len(trials) == 6

    # summary.md: the same count, and its Pareto rows name the same trials with the same hashes as the console.
    summary = (Path(out.strip().splitlines()[-1]).parent / "summary.md").read_text()
    assert "`n`: 5 trials" in summary and "1 retried" in summary
    console = {int(m.group(1)): m.group(3) for m in lines}
    rows = [r for r in summary.splitlines() if r.startswith("| ") and "`" in r]
    assert [int(r.split("|")[1]) for r in rows] == [p["trial"] for p in results["pareto"]] and rows
    for r in rows:
        number, hash8 = int(r.split("|")[1]), r.split("`")[1]
        assert console[number] == hash8 == trials[number].user_attrs["arch_hash"][:8]
