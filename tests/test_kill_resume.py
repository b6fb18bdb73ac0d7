"""Crash safety: `tinynas search` killed with SIGKILL in the middle of a trial, then the same command again:
every completed trial is still there, the trial the dead process left RUNNING is failed and retried with the same
params, and the search finishes with the requested count."""

import os
import signal
import time

import pytest
from optuna.trial import TrialState

from tests.test_workers import finish, load, start_search
from tinynas.storage import WORKER_ATTR, counted_trials

pytestmark = pytest.mark.slow


def wait_mid_trial(p, storage, study, tmp_path, timeout=600):
    """Wait until the worker has completed a trial and is running (and has marked) the next one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert p.poll() is None, (tmp_path / "w.log").read_text()[-3000:]
        try:
            trials = load(storage, study, tmp_path)
        except Exception:  # the study is not created yet
            trials = []
        running = [t for t in trials if t.state == TrialState.RUNNING
                   and t.user_attrs.get(WORKER_ATTR, {}).get("trial") == t.number]
        if running and any(t.state == TrialState.COMPLETE for t in trials):
            return trials
        time.sleep(0.2)
    raise TimeoutError("no trial was running")


def test_sigkill_mid_trial_then_rerun_finishes_the_study(tmp_path):
    storage, study, n = f"journal://{tmp_path / 'study.journal'}", "k", 4
    p = start_search(tmp_path, storage, study, n, "w")
    wait_mid_trial(p, storage, study, tmp_path)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    before = load(storage, study, tmp_path)
    done = {t.number: (t.params, t.values) for t in before if t.state == TrialState.COMPLETE}
    stale = [t for t in before if t.state == TrialState.RUNNING]
    assert len(stale) == 1 and done

    finish(start_search(tmp_path, storage, study, n, "w"), tmp_path, "w")
    log = (tmp_path / "w.log").read_text()
    assert "left RUNNING by a worker that died" in log and f"{len(done)}/{n}" in log
    after = load(storage, study, tmp_path)
    assert {t.number: (t.params, t.values) for t in after if t.number in done} == done  # nothing lost or redone
    dead = after[stale[0].number]
    assert dead.state == TrialState.FAIL
    retry = [t for t in after if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    # The retry keeps every param the dead attempt had drawn (all of them, unless it died while sampling).
    assert dead.params.items() <= retry[0].params.items()
    states = [t.state for t in after]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert counted_trials(after) == n and len(after) == n + 1  # the retried attempt is not counted
