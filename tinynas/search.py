"""The constrained multi-objective search: Optuna study, storage, sampler and the candidate objective."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from estimators import MCU, estimate
from search_spaces.base import SearchSpace
from tinynas.data import Dataset, at_resolution
from tinynas.errors import ConfigError
from tinynas.train import TrainConfig, accuracy, fit

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


class CandidateObjective:
    """Score one sampled arch: estimate first; train only when it fits the budgets."""

    def __init__(self, space: SearchSpace, data: Dataset, mcu: MCU, runtime: str, budgets: Budgets,
                 train_cfg: TrainConfig, device, objectives: list[str], seed: int = 0, on_trial=None):
        self.space, self.data, self.mcu, self.runtime, self.budgets = space, data, mcu, runtime, budgets
        self.train_cfg, self.device, self.objectives, self.seed = train_cfg, device, objectives, seed
        self.on_trial = on_trial
        self._splits: dict[int, tuple] = {}

    def splits(self, resolution: int):
        if resolution not in self._splits:
            self._splits[resolution] = (at_resolution(self.data.train, resolution),
                                        at_resolution(self.data.val, resolution))
        return self._splits[resolution]

    def _reuse(self, trial: optuna.Trial, arch_hash: str) -> float | None:
        """The accuracy of an earlier trained trial of the same arch, if any."""
        for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.user_attrs.get("arch_hash") == arch_hash and t.user_attrs.get("trained"):
                return float(t.user_attrs["accuracy"])
        return None

    def __call__(self, trial: optuna.Trial):
        start = time.perf_counter()
        arch = self.space.sample(trial)
        graph = self.space.to_ir(arch, self.data.in_channels, self.data.num_classes)
        est = estimate(graph, self.mcu, self.runtime)
        attrs = {"arch": arch.to_dict(), "arch_hash": arch.hash, "sram_bytes": est.sram.total_bytes,
                 "flash_bytes": est.flash.total_bytes, "latency_ms": est.latency_ms, "energy_mj": est.energy_mj,
                 "macs": est.macs, "params": est.params}
        violations = self.budgets.violations(est.sram.total_bytes, est.flash.total_bytes, est.latency_ms)
        for k, v in violations.items():
            trial.set_constraint(k, v)
        over = [k for k, v in violations.items() if v > 0]
        if over:
            attrs.update(accuracy=0.0, trained=False, infeasible=", ".join(over))
        else:
            acc = self._reuse(trial, arch.hash)
            if acc is not None:
                attrs.update(accuracy=acc, trained=True, reused=True)
            else:
                train, val = self.splits(arch.resolution)
                model = self.space.build_torch(arch, self.data.in_channels, self.data.num_classes)
                try:
                    fit(model, train, self.train_cfg, self.device, seed=self.seed + trial.number)
                except Exception as e:  # recorded as FAIL with its reason; the study goes on
                    trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}")
                    raise
                attrs.update(accuracy=accuracy(model, val, self.device), trained=True)
        attrs["seconds"] = time.perf_counter() - start
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        if self.on_trial is not None:
            self.on_trial(trial.number, attrs)
        return tuple(float(attrs[OBJECTIVES[o][0]]) for o in self.objectives)


def run_study(study: optuna.Study, objective: CandidateObjective, n_trials: int) -> None:
    """Run until the study holds ``n_trials`` finished trials (shared by every worker on the storage)."""
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    remaining = n_trials - done
    if remaining <= 0:
        log.info("study %s already has %d/%d finished trials; nothing to run", study.study_name, done, n_trials)
        return
    if done:
        log.info("resuming study %s: %d/%d trials already finished", study.study_name, done, n_trials)
    study.optimize(objective, n_trials=remaining, catch=(Exception,),
                   callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)])


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Feasible, trained trials on the Pareto front, best accuracy first."""
    front = [t for t in study.best_trials if is_feasible(t) and t.user_attrs.get("trained")]
    return sorted(front, key=lambda t: -t.user_attrs["accuracy"])


def study_counts(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    by = {s: sum(t.state == s for t in trials) for s in TrialState}
    return {
        "n_trials": len(trials),
        "n_complete": by[TrialState.COMPLETE],
        "n_infeasible": sum(t.state == TrialState.COMPLETE and not is_feasible(t) for t in trials),
        "n_pruned": by[TrialState.PRUNED],
        "n_failed": by[TrialState.FAIL],
    }
