"""Progress of long work: one log line per epoch of every training stage (stage, epoch k/N, loss, accuracy,
seconds, ETA) and, where stderr is a terminal, a tqdm bar over the stage's batches."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("tinynas.progress")


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class EpochProgress:
    """The progress of one training stage of ``epochs`` epochs, ``done`` of them finished before (a resume).

    :meth:`epoch` logs the line of a finished epoch; its ETA is the mean time of the epochs this process ran
    times the epochs left. ``steps_per_epoch`` > 0 and a terminal on stderr (or ``bar=True``) add a tqdm bar
    that :meth:`step` advances; log lines are routed around it while it is open. ``timed=False``: the stage's
    start is not known (the first line then has no seconds and no ETA)."""

    def __init__(self, stage: str, epochs: int, steps_per_epoch: int = 0, done: int = 0, bar: bool | None = None,
                 timed: bool = True):
        self.stage, self.epochs, self.first = stage, int(epochs), int(done)
        self.last_epoch = int(done)
        self.start = self.last = time.perf_counter() if timed else None
        self.bar, self._redirect = None, None
        if (sys.stderr.isatty() if bar is None else bar) and steps_per_epoch > 0 and self.epochs > done:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
            self.bar = tqdm(total=(self.epochs - done) * steps_per_epoch, desc=stage, unit="batch", leave=False,
                            file=sys.stderr, dynamic_ncols=True)

    def step(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def epoch(self, k: int, loss: float, accuracy: float | None = None) -> str:
        """Log (and return) the line of epoch ``k`` (1-based) with its mean loss and, if known, accuracy."""
        now = time.perf_counter()
        parts = [f"{self.stage}: epoch {k}/{self.epochs}", f"loss {loss:.4f}"]
        if accuracy is not None:
            parts.append(f"train acc {accuracy:.3f}")
        if self.last is not None:
            per_epoch = (now - self.start) / max(1, k - self.first)
            parts += [duration(now - self.last), f"ETA {duration(per_epoch * (self.epochs - k))}"]
        else:  # the first epoch of an untimed stage: time the next ones from here
            self.start, self.first = now, k
        self.last, self.last_epoch = now, k
        line = "  ".join(parts)
        log.info(line)
        return line

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self._redirect.__exit__(None, None, None)
            self.bar = self._redirect = None

    def __enter__(self) -> "EpochProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_stages: dict[str, EpochProgress] = {}


def epoch_done(stage: str, k: int, epochs: int, loss: float, accuracy: float | None = None) -> str:
    """:meth:`EpochProgress.epoch` for a loop that holds no :class:`EpochProgress`: the stage is tracked by
    name from its first reported epoch (so that line has no seconds or ETA) to its last."""
    p = _stages.get(stage)
    if p is None or p.epochs != epochs or k <= p.last_epoch:
        p = _stages[stage] = EpochProgress(stage, epochs, done=k - 1, timed=False)
    line = p.epoch(k, loss, accuracy)
    if k >= epochs:
        _stages.pop(stage, None)
    return line
