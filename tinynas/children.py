"""Child processes that die with their parent, and the temporary folders of parents that died.

A child started by :func:`run` gets SIGKILL from the kernel when its parent dies, even by SIGKILL (Linux:
``prctl(PR_SET_PDEATHSIG)``, set between fork and exec, so it covers any program). Without it, the onnx2tf
converter of a killed ``tinynas search`` is adopted by PID 1 and goes on writing into the run dir for a minute
while the re-run works there. The signal follows the *thread* that started the child: call :func:`run` from a
thread that lives as long as the child is wanted (``subprocess.run`` blocks it until then anyway).

A temporary folder made by :func:`make_temp_dir` carries its creator's pid and start time in its name;
:func:`remove_stale_temp_dirs` deletes the ones whose creator is gone (a SIGKILL skips ``finally`` blocks).
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with(parent: int):
    def set_death_signal() -> None:  # runs in the child, between fork and exec
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return set_death_signal


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(args, **kwargs)``, the child killed when this process dies (on Linux)."""
    if sys.platform.startswith("linux"):
        kwargs["preexec_fn"] = _die_with(os.getpid())
    return subprocess.run(args, **kwargs)


def _started(pid: int) -> int | None:
    """The process's start time in whole seconds (psutil), or None when no such process exists."""
    import psutil

    try:
        return int(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:  # someone else's live process
        return -1


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new folder ``parent/<prefix><pid>-<start>-<random>`` for :func:`remove_stale_temp_dirs` to judge later."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-{_started(os.getpid())}-", dir=parent))


def remove_stale_temp_dirs(parent: Path, prefix: str) -> list[Path]:
    """Delete the folders ``parent/<prefix>*`` whose creator process is gone (or that name none); returns them."""
    removed = []
    for path in sorted(Path(parent).glob(f"{glob.escape(prefix)}*")):
        pid, _, rest = path.name[len(prefix):].partition("-")
        started = rest.partition("-")[0]
        if not path.is_dir() or not (pid.isdigit() and started.isdigit()):
            if path.is_dir():  # made before folders carried their creator
                removed.append(path)
            continue
        now = _started(int(pid))
        if now is None or (now != -1 and abs(now - int(started)) > 1):  # gone, or the pid was reused
            removed.append(path)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s, left by a process that died", path)
    return removed
