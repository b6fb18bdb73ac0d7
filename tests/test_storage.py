"""Storage URLs and the dead-worker rule: a trial left RUNNING by a process that no longer exists is failed and
retried with the same params, and the failed attempt does not count towards the study's total."""

import datetime
import os
import subprocess
import sys
import time
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from tinynas.errors import ConfigError
from tinynas.search import run_study
from tinynas.storage import (CONSTRAINT_PREFIX, WORKER_ATTR, counted_trials, fail_dead_trials, is_dead, make_storage,
                             public_url, worker_mark)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def journal_study(tmp_path, name="s"):
    storage, _ = make_storage(None, tmp_path)
    return optuna.create_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0),
                               load_if_exists=True)


def quadratic(trial):
    x = trial.suggest_int("x", 0, 1000)
    return (x - 500) ** 2


def running_trial(study, mark):
    trial = study.ask()
    trial.suggest_int("x", 0, 1000)
    if mark is not None:
        trial.set_user_attr(WORKER_ATTR, mark)
    return study.trials[trial.number]


def test_worker_marks_judge_liveness_by_pid_and_process_start(tmp_path):
    study = journal_study(tmp_path)
    alive = running_trial(study, worker_mark(0))
    assert not is_dead(alive)
    gone = running_trial(study, {**worker_mark(1), "pid": dead_pid()})
    assert is_dead(gone)
    reused = running_trial(study, {**worker_mark(2), "started": worker_mark(2)["started"] - 100})  # pid reused
    assert is_dead(reused)
    elsewhere = running_trial(study, {**worker_mark(3), "host": "another-machine", "pid": dead_pid()})
    assert not is_dead(elsewhere)
    unmarked = running_trial(study, None)
    copied = running_trial(study, worker_mark(0))  # a retry carries its failed attempt's mark
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
    for t in (unmarked, copied):
        assert not is_dead(t) and is_dead(t, now=later)


def test_dead_journal_trial_is_failed_retried_and_the_total_reached(tmp_path):
    study = journal_study(tmp_path)
    run_study(study, quadratic, 2)
    stale = running_trial(study, {**worker_mark(2), "pid": dead_pid()})
    live = running_trial(study, worker_mark(3))  # this process: alive, left alone
    assert fail_dead_trials(study) == [stale.number]
    assert fail_dead_trials(study) == []  # failed once only
    trials = study.get_trials()
    retry = trials[-1]
    assert trials[stale.number].state == TrialState.FAIL and retry.state == TrialState.WAITING
    assert retry.params == stale.params and retry.system_attrs["failed_trial"] == stale.number
    assert trials[live.number].state == TrialState.RUNNING
    assert counted_trials(trials) == 2
    study.tell(live.number, 0.0)
    run_study(study, quadratic, 5)
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.FAIL) == 1 and TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert counted_trials(trials) == 5 and len(trials) == 6
    assert study.trials[retry.number].params == stale.params  # the retry ran with the dead attempt's params


def test_retries_stop_after_max_retry(tmp_path):
    study = journal_study(tmp_path)
    for attempt in range(3):
        running = [t for t in study.get_trials() if t.state == TrialState.WAITING]
        if running:  # run the queued retry, then let its worker "die" again
            trial = study.ask()
            trial.set_user_attr(WORKER_ATTR, {**worker_mark(trial.number), "pid": dead_pid()})
        else:
            running_trial(study, {**worker_mark(0), "pid": dead_pid()})
        fail_dead_trials(study, max_retry=2)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    assert counted_trials(trials) == 1  # the last FAIL was not retried: it stands and counts
    assert trials[2].system_attrs["retry_history"] == [0, 1]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_rdb_storage_uses_heartbeat_and_retries_stale_trials(tmp_path):
    storage, url = make_storage(f"sqlite:///{tmp_path / 's.db'}", tmp_path, heartbeat_interval=1, grace_period=1)
    assert storage.get_heartbeat_interval() == 1
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    trial.suggest_int("x", 0, 1000)
    storage.record_heartbeat(trial._trial_id)  # what a worker's heartbeat thread does; then the worker dies
    time.sleep(2.5)
    assert fail_dead_trials(study) == [trial.number]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    assert study.trials[1].params == study.trials[0].params


def test_unreachable_database_is_named_without_its_password(tmp_path):
    url = "postgresql://alice:s3cret@127.0.0.1:1/tinynas"
    with pytest.raises(ConfigError) as e:
        make_storage(url, tmp_path)
    msg = str(e.value)
    assert "s3cret" not in msg and "alice:***@127.0.0.1:1/tinynas" in msg
    assert "server is running" in msg
    assert public_url(url) == "postgresql://alice:***@127.0.0.1:1/tinynas"


def test_bad_urls_name_the_value(tmp_path):
    with pytest.raises(ConfigError, match="not a storage URL"):
        make_storage("studies.db", tmp_path)
    with pytest.raises(ConfigError, match="must be absolute"):
        make_storage("journal://relative/study.log", tmp_path)
    with pytest.raises(ConfigError, match="no database driver for 'nosuchdb'"):
        make_storage("nosuchdb://x/y", tmp_path)


def test_default_is_a_journal_in_the_run_dir(tmp_path):
    storage, url = make_storage(None, tmp_path)
    assert url == f"journal://{(tmp_path / 'study.journal').resolve()}"
    assert (tmp_path / "study.journal").is_file()
    assert isinstance(storage, optuna.storages.JournalStorage)
    assert os.path.isabs(url[len("journal://"):])


def _dead_constrained_trial(study):
    trial = study.ask()
    trial.suggest_int("x", 0, 1000)
    trial.set_constraint("sram", 0.5)  # what CandidateObjective records right after sampling
    trial.set_user_attr(WORKER_ATTR, {**worker_mark(trial.number), "pid": dead_pid()})
    return trial.number


def _run_retry_warning_free(study, failed_number):
    """Run the queued retry as a resumed search does: its constraints must be its own, set without a warning."""
    retry = study.ask()
    attrs = study._storage.get_trial_system_attrs(retry._trial_id)
    assert attrs["failed_trial"] == failed_number
    assert not any(k.startswith(CONSTRAINT_PREFIX) for k in attrs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna's "constraint value is ignored ... already set" would raise
        retry.set_constraint("sram", -0.25)
    study.tell(retry, 1.0)
    assert study.trials[retry.number].constraints == {"sram": -0.25}
    assert study.trials[failed_number].constraints == {"sram": 0.5}  # the dead attempt keeps what it measured


def test_journal_retry_sets_its_constraints_once(tmp_path):
    study = journal_study(tmp_path)
    dead = _dead_constrained_trial(study)
    assert fail_dead_trials(study) == [dead]
    _run_retry_warning_free(study, dead)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_rdb_retry_sets_its_constraints_once(tmp_path):
    storage, _ = make_storage(f"sqlite:///{tmp_path / 's.db'}", tmp_path, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="s", storage=storage)
    dead = _dead_constrained_trial(study)
    storage.record_heartbeat(study.trials[dead]._trial_id)
    time.sleep(2.5)
    assert fail_dead_trials(study) == [dead]
    _run_retry_warning_free(study, dead)
