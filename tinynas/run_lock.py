"""One writer of a run dir's outputs at a time.

``tinynas search`` writes results.json, pareto.csv, pareto.png, summary.md and the deployed model into its run dir
at the end. Two processes on one run dir (a second ``tinynas search n_trials=0 deploy=false`` while the first
deploys) would overwrite each other's files without a word, so that phase holds an exclusive ``fcntl.flock`` on
``<run dir>/.tinynas.lock``, whose text names the holder. A second writer does not wait (its outputs would replace
the first's, e.g. drop the record of the deployed model): it exits 2 with a line naming the holder's pid, before
it starts any work. The kernel releases the lock when the holder exits or is killed, so a stale lock file is
harmless. The study's storage is not locked: many workers on one study remain a feature (each with its own
``run_id``).
"""

from __future__ import annotations

import datetime
import fcntl
import os
from pathlib import Path

from tinynas.errors import ConfigError

LOCK_FILE = ".tinynas.lock"
_held: dict[Path, "RunDirLock"] = {}  # this process's locks (a second flock of ours would refuse us)


class RunDirLock:
    """The exclusive lock on a run dir's outputs; released by :meth:`release` or when the process ends."""

    def __init__(self, run_dir: Path, fd: int):
        self.run_dir, self._fd = run_dir, fd

    def release(self) -> None:
        if _held.pop(self.run_dir, None) is self:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # releases the flock


def hold_run_dir(run_dir: Path, what: str) -> RunDirLock:
    """Take the lock on ``run_dir``'s outputs for ``what`` (shown to a second writer), or raise a ConfigError
    naming the process that holds it."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _held:
        return _held[run_dir]
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process (pid not yet written)"
        os.close(fd)
        raise ConfigError(f"run dir {run_dir} is locked by {holder}: it is writing that run dir's outputs "
                          f"(results.json, summary.md, pareto.png, the deployed model). Run this again when it has "
                          f"finished, or give this run its own run_id=; the study's storage is not locked") from None
    since = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S UTC")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} ({what}, since {since})\n".encode(), 0)
    lock = _held[run_dir] = RunDirLock(run_dir, fd)
    return lock


def check_run_dir_free(run_dir: Path, what: str) -> None:
    """Refuse now, before any work, when another process holds ``run_dir``'s outputs."""
    run_dir = Path(run_dir).resolve()
    if run_dir not in _held:
        hold_run_dir(run_dir, what).release()
