"""Several `tinynas search` workers on one study (journal file; PostgreSQL when TINYNAS_TEST_POSTGRES_URL is set,
as `.ci/run` does): the study's total is reached, every trial is run by exactly one worker, every worker returns
with the whole study. And one worker with the same seed and budget finds the same Pareto front."""

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tinynas.storage import WORKER_ATTR, counted_trials, make_storage

# A study small enough for 8×8 digits on 2 cores: a few seconds a trial.
TINY = ["deploy=false", "logger=none", "dataset=digits", "search=tpe", "search.n_startup_trials=3", "search_space.options.resolutions=[8]",
        "search_space.options.widths=[0.3,0.5]", "search_space.options.depth_choices=[1]",
        "search_space.options.head_channels=32", "train.max_train_samples=200", "train.epochs=1"]
POSTGRES_URL = os.environ.get("TINYNAS_TEST_POSTGRES_URL")


def start_search(tmp_path: Path, storage: str, study: str, n_trials: int, run_id: str) -> subprocess.Popen:
    """`tinynas search` as its own process (a worker); its stderr goes to <run_id>.log."""
    env = {**os.environ, "TINYNAS_RUNS": str(tmp_path / "runs"), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    exe = str(Path(sys.executable).with_name("tinynas"))
    log = open(tmp_path / f"{run_id}.log", "a")
    return subprocess.Popen([exe, "search", *TINY, f"storage={storage}", f"study_name={study}",
                             f"n_trials={n_trials}", f"run_id={run_id}"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=log, text=True)


def finish(p: subprocess.Popen, tmp_path: Path, run_id: str, timeout=900) -> str:
    out, _ = p.communicate(timeout=timeout)
    log = (tmp_path / f"{run_id}.log").read_text()
    assert p.returncode == 0, log[-4000:]
    return out


def logged_trials(log: str) -> list[int]:
    """Trial numbers a worker's log says it ran ("trial   3/8 ..." is trial number 2)."""
    return [int(n) - 1 for n in re.findall(r"trial +(\d+)/\d+ ", log)]


def load(storage_url: str, study: str, tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    storage, _ = make_storage(storage_url, tmp_path)
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def check_two_workers(tmp_path: Path, storage: str, n_trials: int = 8) -> None:
    study = f"w-{uuid.uuid4().hex[:8]}"
    workers = [start_search(tmp_path, storage, study, n_trials, f"w{i}") for i in range(2)]
    results = [Path(finish(p, tmp_path, f"w{i}").strip().splitlines()[-1]) for i, p in enumerate(workers)]
    trials = load(storage, study, tmp_path)
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert [t.number for t in trials] == list(range(len(trials)))
    # The total: exact unless both workers checked it in the same instant (then one extra, at most).
    assert n_trials <= counted_trials(trials) <= n_trials + 1
    # Each trial ran in exactly one worker: the workers' own logs, against the storage.
    ran = {f"w{i}": logged_trials((tmp_path / f"w{i}.log").read_text()) for i in range(2)}
    together = ran["w0"] + ran["w1"]
    assert len(together) == len(set(together)), ran
    assert set(together) == {t.number for t in trials if t.state == TrialState.COMPLETE}
    assert ran["w0"] and ran["w1"], "both workers ran trials"
    assert {t.user_attrs[WORKER_ATTR]["pid"] for t in trials} == {p.pid for p in workers}
    for i, p in enumerate(workers):
        mine = {t.number for t in trials if t.user_attrs[WORKER_ATTR]["pid"] == p.pid}
        assert mine == set(ran[f"w{i}"])
    # Each worker returned with the whole study, not just its share.
    for r in results:
        assert json.loads(r.read_text())["study"]["n_trials"] == len(trials)


@pytest.mark.slow
def test_two_workers_share_a_journal_study(tmp_path):
    check_two_workers(tmp_path, f"journal://{tmp_path / 'shared.journal'}")


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES_URL, reason="TINYNAS_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and "
                                             "sets it: postgresql://postgres@127.0.0.1:PORT/tinynas)")
def test_two_workers_share_a_postgres_study(tmp_path):
    check_two_workers(tmp_path, POSTGRES_URL)


@pytest.mark.slow
def test_same_seed_same_budget_one_worker_same_pareto_front(tmp_path):
    # Two fresh studies, one worker each (their own processes, as a user runs them), TPE with the same seed.
    n = 6
    runs = [start_search(tmp_path, f"journal://{tmp_path / run}.journal", "s", n, run) for run in ("a", "b")]
    fronts = []
    for run, p in zip(("a", "b"), runs):
        results = json.loads(Path(finish(p, tmp_path, run).strip().splitlines()[-1]).read_text())
        assert results["study"]["n_trials"] == n
        fronts.append(results["pareto"])
        trials = load(f"journal://{tmp_path / run}.journal", "s", tmp_path)
        fronts.append([(t.params, t.values) for t in trials])  # every trial: same arch, same accuracy
    assert fronts[0], "a feasible trained front"
    assert fronts[0] == fronts[2] and fronts[1] == fronts[3]
