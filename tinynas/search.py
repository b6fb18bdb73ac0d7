"""The constrained multi-objective search: Optuna study, storage, sampler and the candidate objective."""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from estimators import MCU, estimate
from search_spaces.base import ArchSpec, SearchSpace
from tinynas.data import Dataset
from tinynas.errors import ConfigError
from tinynas.evaluators import BaseEvaluator
from tinynas.storage import MAX_RETRY, counted_trials, fail_dead_trials, mark_trial, retried_numbers

log = logging.getLogger("tinynas.search")

# objective name → (user-attribute holding its value, direction)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "accuracy": ("accuracy", "maximize"),
    "sram": ("sram_bytes", "minimize"),
    "flash": ("flash_bytes", "minimize"),
    "latency": ("latency_ms", "minimize"),
    "energy": ("energy_mj", "minimize"),
    "macs": ("macs", "minimize"),
}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclasses.dataclass(frozen=True)
class Budgets:
    sram_bytes: int
    flash_bytes: int
    latency_ms: float | None = None

    @classmethod
    def resolve(cls, cfg: dict[str, Any], mcu: MCU) -> "Budgets":
        """Budgets from config, the MCU's own SRAM / flash where not set."""
        sram = cfg.get("sram_bytes") or mcu.sram_bytes
        flash = cfg.get("flash_bytes") or mcu.flash_bytes
        lat = cfg.get("latency_ms")
        if sram <= 0 or flash <= 0:
            raise ConfigError(f"mcu={mcu.name} has no SRAM/flash budget (sram_bytes={sram}, flash_bytes={flash}); "
                              f"set budgets.sram_bytes and budgets.flash_bytes or pick a board with memory")
        if lat is not None and lat <= 0:
            raise ConfigError(f"budgets.latency_ms={lat} must be positive or null")
        return cls(int(sram), int(flash), None if lat is None else float(lat))

    def violations(self, sram: int, flash: int, latency_ms: float) -> dict[str, float]:
        """Constraint values (feasible when ≤ 0), relative to the budget."""
        v = {"sram": sram / self.sram_bytes - 1.0, "flash": flash / self.flash_bytes - 1.0}
        if self.latency_ms is not None:
            v["latency"] = latency_ms / self.latency_ms - 1.0
        return v


def objective_directions(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names:
        raise ConfigError(f"objectives={names}: unknown {unknown}; allowed: {', '.join(OBJECTIVES)}")
    if "accuracy" not in names:
        raise ConfigError(f"objectives={names} must include accuracy")
    return [OBJECTIVES[n][1] for n in names]


def is_feasible(t: FrozenTrial) -> bool:
    return bool(t.constraints) and all(v <= 0 for v in t.constraints.values())


def is_scored(t: FrozenTrial) -> bool:
    """Whether the trial's accuracy comes from an evaluator (``scored``; studies written before evaluators
    existed say ``trained``), not the 0 an over-budget trial records."""
    return bool(t.user_attrs.get("scored", t.user_attrs.get("trained")))


class CandidateObjective:
    """Score one sampled arch: estimate first; ask the evaluator for its accuracy only when it fits the budgets.

    Constraint-aware resampling (``resample_attempts`` > 0). When the sampled arch is over budget, up to that
    many other archs are drawn and only estimated: alternately a crossover of the sampled arch with the space's
    smallest (about half of its choices kept, the rest at their minimum) and a uniform draw of the space. The
    trial itself stays recorded as the over-budget arch its parameters describe (``infeasible``, not scored);
    the first feasible draw that the study has not seen is enqueued as the next trial
    (``study.enqueue_trial``, user attr ``resampled_from``), and this trial records ``resampled_to``. So every
    trial's parameters describe the arch whose figures it reports and the sampler learns from honest data;
    returning the draw's figures under the first draw's parameters would teach TPE or NSGA-II that an
    over-budget region fits. The price is one trial slot per rejection, which costs an estimate, not an
    evaluation. With ``max_trials`` set, nothing is enqueued once the study holds that many trials, so no
    WAITING trial outlives the search.

    A feasible arch scored before by the same evaluator (same ``arch_hash``) reuses that trial's accuracy; one
    that a lower-numbered trial is evaluating now (another worker: each trial records its ``arch_hash`` before
    evaluating) is waited for, then reused (``reused_from``), so concurrent workers never evaluate an arch twice.
    An evaluator may stop a trial with ``optuna.TrialPruned`` (successive halving): its figures are recorded
    and it ends PRUNED; the same arch sampled again is evaluated again (it meets other competitors).
    """

    def __init__(self, space: SearchSpace, data: Dataset, mcu: MCU, runtime: str, budgets: Budgets,
                 evaluator: BaseEvaluator, objectives: list[str], seed: int = 0, on_trial=None,
                 resample_attempts: int = 0, max_trials: int | None = None):
        if resample_attempts < 0:
            raise ConfigError(f"search.resample_attempts={resample_attempts} must be 0 (off) or positive")
        self.space, self.data, self.mcu, self.runtime, self.budgets = space, data, mcu, runtime, budgets
        self.evaluator, self.objectives, self.seed = evaluator, objectives, seed
        self.on_trial = on_trial
        self.resample_attempts, self.max_trials = int(resample_attempts), max_trials
        self.poll_s = 1.0  # how often a trial waiting for another worker's result of the same arch looks again
        self._prepared, self._waited = False, False

    def _reuse(self, trial: optuna.Trial, arch_hash: str) -> dict[str, Any] | None:
        """The accuracy of another trial of the same arch scored by the same evaluator, if any: a finished one,
        or one that a lower-numbered trial is evaluating now (in another worker): that one is waited for. The
        lower number breaks the tie when two workers draw the same arch at once (the later waits, never both)."""
        name = self.evaluator.name
        while True:
            running = None
            for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
                if t.user_attrs.get("arch_hash") != arch_hash or t.number == trial.number:
                    continue
                if (t.state == TrialState.COMPLETE and is_scored(t) and not t.user_attrs.get("reused")
                        and t.user_attrs.get("evaluator", "train") == name):
                    return {"accuracy": float(t.user_attrs["accuracy"]), "reused": True, "reused_from": t.number}
                if t.state == TrialState.RUNNING and t.number < trial.number and running is None:
                    running = t.number
            if running is None:
                return None
            if not self._waited:
                log.info("trial %d: arch %s is being evaluated by trial %d; waiting for its result", trial.number,
                         arch_hash[:8], running)
            self._waited = True
            time.sleep(self.poll_s)
            fail_dead_trials(trial.study)  # a waited-for trial whose worker died is failed: then evaluate here

    def measure(self, arch: ArchSpec) -> tuple[dict[str, Any], dict[str, float]]:
        """The arch's estimated figures (user attrs) and its constraint values (feasible when all ≤ 0)."""
        graph = self.space.to_ir(arch, self.data.in_channels, self.data.num_classes)
        est = estimate(graph, self.mcu, self.runtime)
        attrs = {"arch": arch.to_dict(), "arch_hash": arch.hash, "sram_bytes": est.sram.total_bytes,
                 "flash_bytes": est.flash.total_bytes, "latency_ms": est.latency_ms, "energy_mj": est.energy_mj,
                 "macs": est.macs, "params": est.params}
        return attrs, self.budgets.violations(est.sram.total_bytes, est.flash.total_bytes, est.latency_ms)

    def fits(self, arch: ArchSpec) -> bool:
        return all(v <= 0 for v in self.measure(arch)[1].values())

    def score(self, trial: optuna.Trial, arch: ArchSpec) -> dict[str, Any]:
        """Accuracy attrs of a feasible arch: reused from an earlier trial of the same arch, else evaluated."""
        base = {"scored": True, "evaluator": self.evaluator.name}
        self._waited = False
        earlier = self._reuse(trial, arch.hash)
        if earlier is not None:
            return {**earlier, **base}
        if not self._prepared:
            self.evaluator.prepare()
            self._prepared = True
        return {**self.evaluator.score(trial, arch), **base}

    def resample(self, trial: optuna.Trial, arch: ArchSpec) -> tuple[ArchSpec | None, int]:
        """A feasible arch the study has not seen, drawn near ``arch`` or uniformly; and the draws it took."""
        rng = random.Random(f"{self.seed}:{trial.number}")
        seen = {t.user_attrs.get("arch_hash") for t in trial.study.get_trials(deepcopy=False)}
        smallest = self.space.smallest()
        for i in range(self.resample_attempts):
            draw = self.space.crossover(arch, smallest, rng) if i % 2 == 0 else self.space.random(rng)
            if draw.hash not in seen and self.fits(draw):
                return draw, i + 1
            seen.add(draw.hash)
        return None, self.resample_attempts

    def _room_for_another(self, study: optuna.Study) -> bool:
        return self.max_trials is None or len(study.get_trials(deepcopy=False)) < self.max_trials

    def __call__(self, trial: optuna.Trial):
        start = time.perf_counter()
        arch = self.space.sample(trial)
        trial.set_user_attr("arch_hash", arch.hash)  # before evaluating: other workers see what is running
        attrs, violations = self.measure(arch)
        retry_of = trial.storage.get_trial_system_attrs(trial._trial_id).get("failed_trial")
        if retry_of is not None:
            attrs["retry_of"] = retry_of
        for k, v in violations.items():
            trial.set_constraint(k, v)
        over = [k for k, v in violations.items() if v > 0]
        if over:
            attrs.update(accuracy=0.0, scored=False, infeasible=", ".join(over))
            if self.resample_attempts and self._room_for_another(trial.study):
                draw, tries = self.resample(trial, arch)
                attrs["resample_attempts"] = tries
                if draw is not None:
                    trial.study.enqueue_trial(self.space.params(draw), user_attrs={"resampled_from": trial.number})
                    attrs["resampled_to"] = draw.hash
        else:
            try:
                attrs.update(self.score(trial, arch))
            except optuna.TrialPruned:
                attrs.update(scored=False, pruned=True, evaluator=self.evaluator.name)
                self._record(trial, attrs, start)
                raise
        self._record(trial, attrs, start)
        return tuple(float(attrs[OBJECTIVES[o][0]]) for o in self.objectives)

    def _record(self, trial: optuna.Trial, attrs: dict[str, Any], start: float) -> None:
        attrs["seconds"] = time.perf_counter() - start
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        if self.on_trial is not None:
            self.on_trial(trial.number, {**trial.user_attrs, **attrs})


class _StopAtTotal:
    """Callback: stop this worker once the counted trials plus the ones running elsewhere reach the total, so
    concurrent workers do not overshoot it (a race between two workers' checks can still add one trial each)."""

    def __init__(self, n_trials: int, max_retry: int = MAX_RETRY):
        self.n_trials, self.max_retry = n_trials, max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        fail_dead_trials(study, self.max_retry)
        counted, running = study_progress(study)
        if counted + running >= self.n_trials:
            study.stop()


def study_progress(study: optuna.Study) -> tuple[int, int]:
    """(trials counted towards the total, trials RUNNING now)."""
    trials = study.get_trials(deepcopy=False)
    return counted_trials(trials), sum(t.state == TrialState.RUNNING for t in trials)


def run_study(study: optuna.Study, objective: CandidateObjective, n_trials: int, poll_s: float = 2.0,
              max_retry: int = MAX_RETRY, timeout_s: float | None = None) -> None:
    """Run until the study holds ``n_trials`` counted trials, the total shared by every worker on the storage
    (:func:`tinynas.storage.counted_trials`: finished ones, less the attempts of dead workers that were retried).
    Trials left RUNNING by a dead worker are failed and retried first; a worker whose share is done waits for the
    trials still running elsewhere, so that it returns with the whole study. ``max_retry``: retries of a trial
    whose worker died (journal storage; RDB storages take theirs from :func:`tinynas.storage.make_storage`).
    ``timeout_s``: this worker starts no trial after that many seconds from the call (Optuna's ``timeout``: a
    trial running then finishes) and returns without waiting for other workers' trials."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    fail_dead_trials(study, max_retry)
    done, _ = study_progress(study)
    if done >= n_trials:
        log.info("study %s already has %d/%d finished trials; nothing to run", study.study_name, done, n_trials)
        return
    if done:
        log.info("resuming study %s: %d/%d trials already finished", study.study_name, done, n_trials)

    def marked(trial: optuna.Trial):
        mark_trial(trial)  # the journal's stand-in for a heartbeat (see tinynas.storage)
        return objective(trial)

    waited = 0.0
    while True:
        done, running = study_progress(study)
        if done >= n_trials and not running:
            return
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            log.info("study %s: timeout_s=%g reached after %d/%d trials", study.study_name, timeout_s, done, n_trials)
            return
        if done + running < n_trials:
            study.optimize(marked, n_trials=n_trials - done, timeout=left, catch=(Exception,),
                           callbacks=[_StopAtTotal(n_trials, max_retry)])
            waited = 0.0
            continue
        if waited % 60 < poll_s:
            log.info("study %s: %d/%d trials done, waiting for the %d running in other workers (a worker that "
                     "died on another host is noticed by the RDB heartbeat only)", study.study_name, done, n_trials,
                     running)
        time.sleep(poll_s)
        waited += poll_s
        fail_dead_trials(study, max_retry)


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Feasible, scored trials on the Pareto front, best accuracy first. PRUNED trials (stopped by successive
    halving) have no objective values and are never on it."""
    front = [t for t in study.best_trials if is_feasible(t) and is_scored(t)]
    return sorted(front, key=lambda t: -t.user_attrs["accuracy"])


def study_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by outcome. ``n_trials`` counts as ``n_trials=`` does (complete + pruned + failed); an attempt
    whose worker died and that was retried is no trial of its own but ``n_retried`` (its retry is counted)."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    by = {s: sum(t.state == s for t in trials) for s in TrialState}
    return {
        "n_trials": counted_trials(trials),
        "n_complete": by[TrialState.COMPLETE],
        "n_infeasible": sum(t.state == TrialState.COMPLETE and not is_feasible(t) for t in trials),
        "n_pruned": by[TrialState.PRUNED],
        "n_failed": sum(t.state == TrialState.FAIL and t.number not in retried for t in trials),
        "n_retried": len(retried),
    }
