"""Optuna storage from a URL: journal file (default, several processes on one machine), SQLite (one process),
or any SQLAlchemy URL (PostgreSQL for many machines); and the rule that finds trials left RUNNING by a dead worker.

Dead workers. RDB storages run Optuna's heartbeat: a RUNNING trial whose heartbeat is older than the grace period
is failed. The journal has no heartbeat, so every trial records its worker (``user_attrs["worker"]``: host, pid,
process start time, trial number) when it starts; a RUNNING trial whose worker ran on this host and whose process
is gone (or is another process under a reused pid) is failed. Either way the failed trial is retried: a WAITING
copy with the same params is enqueued (Optuna's ``RetryHeartbeatStaleTrialCallback``, at most ``max_retry`` times)
and the failed attempt does not count towards the study's total (see :func:`counted_trials`).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import logging
import os
import random
import socket
import time
import warnings
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from tinynas.errors import ConfigError
from tinynas.journal_repair import repair_torn_journal

log = logging.getLogger("tinynas.storage")

HEARTBEAT_INTERVAL_S = 60   # RDB: each running trial writes a heartbeat this often ...
GRACE_PERIOD_S = 180        # ... and is failed (then retried) when its last one is older than this
MAX_RETRY = 3               # retries of one trial whose worker died, then its FAIL stands
UNMARKED_GRACE_S = 60       # journal: a RUNNING trial that never recorded its worker is dead after this
WORKER_ATTR = "worker"
CONSTRAINT_PREFIX = "constraints:"  # how Optuna's Trial.set_constraint keys its system attrs


@dataclasses.dataclass(frozen=True)
class StorageOptions:
    """The dead-worker settings of ``storage_options:`` in conf/search.yaml. ``heartbeat_interval`` and
    ``grace_period`` (seconds) apply to RDB storages; ``max_retry`` to every storage."""

    heartbeat_interval: int = HEARTBEAT_INTERVAL_S
    grace_period: int = GRACE_PERIOD_S
    max_retry: int = MAX_RETRY

    @classmethod
    def from_cfg(cls, cfg: dict | None) -> "StorageOptions":
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(cfg or {}) - set(names))
        if unknown:
            raise ConfigError(f"storage_options: unknown {unknown}; allowed: {', '.join(names)}")
        opts = cls(**{k: int(v) for k, v in (cfg or {}).items() if v is not None})
        if opts.heartbeat_interval < 1 or opts.max_retry < 0:
            raise ConfigError(f"storage_options.heartbeat_interval={opts.heartbeat_interval} must be ≥ 1 and "
                              f"storage_options.max_retry={opts.max_retry} ≥ 0")
        if opts.grace_period <= opts.heartbeat_interval:
            raise ConfigError(f"storage_options.grace_period={opts.grace_period} must exceed heartbeat_interval="
                              f"{opts.heartbeat_interval} (a live worker would be failed between two heartbeats)")
        return opts


def make_storage(url: str | None, run_dir: Path, *, heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
                 grace_period: int = GRACE_PERIOD_S, max_retry: int = MAX_RETRY):
    """Optuna storage from a URL: ``journal:///abs/path.log`` (default: ``run_dir/study.journal``), ``sqlite:///``
    (one process), or any SQLAlchemy URL (``postgresql://user:pw@host:5432/db``), opened with heartbeat and retry
    of trials whose worker died. Returns ``(storage, url)``, the URL as shown in logs and results.json: its
    password masked."""
    if url is None or url == "":
        url = f"journal://{(run_dir / 'study.journal').resolve()}"
    if url.startswith("journal://"):
        return journal_storage(url), url
    if "://" not in url:
        raise ConfigError(f"storage={url!r} is not a storage URL; use journal:///abs/path.log, sqlite:///path.db "
                          f"or an SQLAlchemy URL such as postgresql://user@host/db")
    return rdb_storage(url, heartbeat_interval, grace_period, max_retry), public_url(url)


def journal_storage(url: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(url[len("journal://"):])
    if not path.is_absolute():
        raise ConfigError(f"storage={url}: a journal path must be absolute (journal:///abs/path.log, three slashes)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as e:
        raise ConfigError(f"storage={url}: cannot write the journal file {path} ({e.strerror})") from None
    repair_torn_journal(path)  # a power cut mid-append: keep the complete records, set the torn bytes aside
    return JournalStorage(JournalFileBackend(str(path)))


def public_url(url: str) -> str:
    """The URL with its password masked, fit for logs and error messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: say nothing about it that might hold a secret
        return url.split("://", 1)[0] + "://..."


def rdb_storage(url: str, heartbeat_interval: int, grace_period: int, max_retry: int):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    shown = public_url(url)
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise ConfigError(f"storage={shown} is not a valid SQLAlchemy URL; e.g. postgresql://user:pw@host:5432/db, "
                          f"sqlite:////abs/study.db or journal:///abs/study.log") from None
    engine_kwargs = {"pool_pre_ping": True}
    if backend in ("postgresql", "mysql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        return _open_rdb(url, engine_kwargs, heartbeat_interval, grace_period, max_retry)
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as e:
        cause = e.__cause__ or e
        raise ConfigError(f"storage={shown}: no database driver for {backend!r} ({cause}); for PostgreSQL install "
                          f"psycopg[binary] (in requirements.lock) or name an installed driver "
                          f"(postgresql+psycopg2://...)") from None
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise ConfigError(f"storage={shown}: cannot open the database ({reason}). Check that the server is running "
                          f"and reachable at that host and port, that the user and password are right, and that "
                          f"the database exists (createdb)") from None


def _open_rdb(url: str, engine_kwargs: dict, heartbeat_interval: int, grace_period: int, max_retry: int,
              attempts: int = 5):
    """RDBStorage, retried when workers starting together race to create Optuna's tables in a fresh database
    (PostgreSQL: "duplicate key value violates unique constraint"); a refused connection is not retried."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeat and its retry callback are "experimental" since Optuna 2.8
                warnings.simplefilter("ignore", ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=RetryFreshCallback(max_retry=max_retry))
        except (IntegrityError, ProgrammingError) as e:
            if attempt == attempts - 1 or isinstance(e, OperationalError):
                raise
            time.sleep(0.5 + random.random())

# --- workers and the trials they leave behind -------------------------------------------------------------------

def process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def worker_mark(trial_number: int) -> dict:
    """What a trial records about the process running it (journal storage's stand-in for a heartbeat)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": process_start(os.getpid()),
            "trial": trial_number}


def mark_trial(trial: optuna.Trial) -> None:
    trial.set_user_attr(WORKER_ATTR, worker_mark(trial.number))


def is_dead(t: FrozenTrial, now: datetime.datetime | None = None) -> bool:
    """A RUNNING journal trial whose worker is known to be gone: it ran on this host and its process no longer
    exists (a reused pid has another start time). Without its own mark (a crash between the trial's creation and
    the mark, or a mark copied from a retried trial) it is dead once older than ``UNMARKED_GRACE_S``. Trials of
    other hosts are never judged here."""
    mark = t.user_attrs.get(WORKER_ATTR)
    if not isinstance(mark, dict) or mark.get("trial") != t.number:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        start = t.datetime_start
        if start is None:
            return False
        if start.tzinfo is None:
            start = start.astimezone()
        return (now - start).total_seconds() > UNMARKED_GRACE_S
    if mark.get("host") != socket.gethostname():
        return False
    started = process_start(int(mark["pid"]))
    return started is None or mark.get("started") is None or abs(started - float(mark["started"])) > 1.0


def fail_dead_trials(study: optuna.Study, max_retry: int = MAX_RETRY) -> list[int]:
    """Fail the RUNNING trials whose worker died and enqueue their retries; returns the failed trial numbers.
    RDB storages: Optuna's heartbeat rule (its retry callback is set by :func:`make_storage`). Journal: the worker
    marks (:func:`is_dead`). Safe when several workers call it at once: only one of them fails a given trial."""
    from optuna.storages import JournalStorage, fail_stale_trials
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage
    with warnings.catch_warnings():  # heartbeat and its retry callback are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", ExperimentalWarning)
        if is_heartbeat_enabled(storage):
            before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
            fail_stale_trials(study)
            failed = sorted({t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))} - before)
        elif isinstance(storage, JournalStorage):
            failed = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                      if is_dead(t) and _fail_and_retry(study, t, max_retry)]
        else:
            return []
    if failed:
        log.warning("study %s: trial(s) %s were left RUNNING by a worker that died; failed them and queued a retry "
                    "with the same params", study.study_name, ", ".join(map(str, failed)))
    return failed


def _fail_and_retry(study: optuna.Study, t: FrozenTrial, max_retry: int) -> bool:
    storage = study._storage
    try:
        if not storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
            return False
    except UpdateFinishedTrialError:  # another worker got there first
        return False
    RetryFreshCallback(max_retry=max_retry)(study, copy.deepcopy(storage.get_trial(t._trial_id)))
    return True


class RetryFreshCallback(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a stale trial, without what the dead attempt measured: its constraint values (Optuna
    copies every system attr, so the retry would start with ``constraints:sram`` already set and its own
    ``set_constraint`` would be ignored with a warning)."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial = copy.copy(trial)
        trial.system_attrs = {k: v for k, v in trial.system_attrs.items() if not k.startswith(CONSTRAINT_PREFIX)}
        super().__call__(study, trial)


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the failed trials that were retried (each retry names the attempts before it)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", ())}


def counted_trials(trials: list[FrozenTrial]) -> int:
    """Trials that count towards the study's total: COMPLETE, PRUNED and FAIL, except the failed attempts of a dead
    worker that were retried (their retry counts instead)."""
    retried = retried_numbers(trials)
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and t.number not in retried) for t in trials)
