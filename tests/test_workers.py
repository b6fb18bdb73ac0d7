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

from tinynas.search import is_scored
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


TRIAL_LINE = re.compile(r"trial +(\d+)(?: \(retry of (\d+)\))?  ([0-9a-f]{8})  \[(\d+)/(\d+)\] .*?"
                        r"(?:acc (\d\.\d{3})(?: \(reused from trial (\d+)\))?|over budget|stopped)")


def logged_trials(log: str) -> list[int]:
    """Optuna trial numbers a worker's log says it ran ("trial   2  1a2b3c4d  [3/8] ...")."""
    return [int(m.group(1)) for m in TRIAL_LINE.finditer(log)]


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
        assert json.loads(r.read_text())["study"]["n_trials"] == counted_trials(trials)


@pytest.mark.slow
def test_two_workers_share_a_journal_study(tmp_path):
    check_two_workers(tmp_path, f"journal://{tmp_path / 'shared.journal'}")


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES_URL, reason="TINYNAS_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and "
                                             "sets it: postgresql://postgres@127.0.0.1:PORT/tinynas)")
def test_two_workers_share_a_postgres_study(tmp_path):
    check_two_workers(tmp_path, POSTGRES_URL)


@pytest.mark.slow
def test_three_workers_evaluate_distinct_archs(tmp_path):
    # The README's recipe: workers started together on one journal, same seed. Each draws from its own seed
    # (derived from seed= and its identity) and no arch is evaluated twice (a duplicate reuses the result).
    storage, study, n = f"journal://{tmp_path / 'shared.journal'}", "three", 9
    workers = [start_search(tmp_path, storage, study, n, f"w{i}") for i in range(3)]
    for i, p in enumerate(workers):
        finish(p, tmp_path, f"w{i}")
    trials = load(storage, study, tmp_path)
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(3)]
    assert sum("joins" in log and "other live worker" in log for log in logs) >= 2  # the later two derive seeds
    scored = [t for t in trials if t.state == TrialState.COMPLETE and is_scored(t)]
    evaluated = [t for t in scored if not t.user_attrs.get("reused")]
    hashes = [t.user_attrs["arch_hash"] for t in evaluated]
    assert evaluated and len(set(hashes)) == len(hashes), hashes  # every evaluation a distinct arch
    # ... as many distinct archs as trials scored by the evaluator, and the study's n trials all done. Workers draw
    # from their own seeds (with one seed for all three, 9 trials drew 6 distinct archs, two trained at once); two
    # seeds can still draw one arch by chance, and the later trial then reuses the finished result instead of
    # training it again, so a reused trial is not a scoring.
    assert len({t.user_attrs["arch_hash"] for t in scored}) == len(evaluated) and len(scored) == n
    for t in scored:  # a reused result is the evaluated one's
        if t.user_attrs.get("reused"):
            source = trials[t.user_attrs["reused_from"]]
            assert source.user_attrs["arch_hash"] == t.user_attrs["arch_hash"] and source.values == t.values
    print(f"three workers: {len(trials)} trials, {len(scored)} scored, {len(evaluated)} evaluated, "
          f"{len({t.user_attrs['arch_hash'] for t in trials})} distinct archs")


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


# --- which seed a worker draws from (in-process, fast) -------------------------------------------------------

def _journal_study(tmp_path):
    storage, _ = make_storage(None, tmp_path)
    return optuna.create_study(study_name="s", storage=storage, load_if_exists=True)


def test_a_lone_worker_keeps_the_seed_and_peers_derive_their_own(tmp_path):
    from tinynas.storage import process_start
    from tinynas.workers import Worker, derived_seed, retire, sampler_seed

    study = _journal_study(tmp_path)
    me = Worker.this("w0")
    assert sampler_seed(study, 7, me) == (7, [])  # alone: the study's seed, as a single worker always drew
    peer_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        peer = Worker("w1", me.host, peer_proc.pid, process_start(peer_proc.pid))
        seed, peers = sampler_seed(study, 7, peer)
        assert peers == [me] and seed == derived_seed(7, peer) != 7
        seed_me, peers_me = sampler_seed(study, 7, me)  # me again (a resume): the peer is live now
        assert peers_me == [peer] and seed_me == derived_seed(7, me) not in (7, seed)
        assert derived_seed(7, peer) != derived_seed(8, peer)  # the study seed still matters
        retire(study, peer)
        assert sampler_seed(study, 7, me) == (7, [])  # a retired peer does not count
        sampler_seed(study, 7, peer)
    finally:
        peer_proc.kill()
        peer_proc.wait()
    assert sampler_seed(study, 7, me) == (7, [])  # nor does one whose process is gone (it never retired)
