"""Which workers share a study, and the sampler seed each one draws from.

Every worker registers itself in the study (a study system attr per worker: run_id, host, pid, process start
time) before it builds its sampler, then looks for the other workers that are live now. Alone, it keeps the
study's seed, so one worker with the same seed and budget draws the same trials as ever. Beside live peers,
its seed is derived from the study seed and its identity (run_id, host, pid), so workers started together
do not draw the same archs. Registering before looking means that of two workers starting in the same instant
at least the later one sees the other (the storage orders the writes); at worst both derive a seed.

A peer is live while its registration is not retired (a worker retires itself when it returns) and, on this
host, its process still runs (a pid reused by another process has another start time). A worker killed on
another host stays "live" for this purpose: its peers then derive their seeds, which costs nothing but the
trial-for-trial reproducibility that several workers never had.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket

import optuna

from tinynas.storage import process_start

PREFIX = "tinynas:worker:"


@dataclasses.dataclass(frozen=True)
class Worker:
    run_id: str
    host: str
    pid: int
    started: float | None

    @classmethod
    def this(cls, run_id: str) -> "Worker":
        pid = os.getpid()
        return cls(str(run_id), socket.gethostname(), pid, process_start(pid))

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.host}:{self.pid}:{self.started}"

    def is_alive(self) -> bool:
        """False only when known to be gone: on this host, no process with that pid and start time."""
        if self.host != socket.gethostname():
            return True
        started = process_start(self.pid)
        return started is not None and self.started is not None and abs(started - self.started) <= 1.0


def register(study: optuna.Study, me: Worker) -> None:
    study._storage.set_study_system_attr(study._study_id, me.key, {**dataclasses.asdict(me), "retired": False})


def retire(study: optuna.Study, me: Worker) -> None:
    study._storage.set_study_system_attr(study._study_id, me.key, {**dataclasses.asdict(me), "retired": True})


def live_peers(study: optuna.Study, me: Worker) -> list[Worker]:
    """The other registered workers of the study that have not retired and are not known to be dead."""
    peers = []
    for key, rec in study._storage.get_study_system_attrs(study._study_id).items():
        if not key.startswith(PREFIX) or key == me.key or rec.get("retired"):
            continue
        w = Worker(rec["run_id"], rec["host"], int(rec["pid"]), rec.get("started"))
        if w.is_alive():
            peers.append(w)
    return peers


def derived_seed(seed: int, me: Worker) -> int:
    """A seed of its own for a worker beside others: a hash of the study seed and the worker's identity."""
    digest = hashlib.sha256(f"{seed}:{me.run_id}:{me.host}:{me.pid}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def sampler_seed(study: optuna.Study, seed: int, me: Worker) -> tuple[int, list[Worker]]:
    """Register ``me`` and return (the seed its sampler draws from, the live peers it saw)."""
    register(study, me)
    peers = live_peers(study, me)
    return (derived_seed(seed, me) if peers else seed), peers
