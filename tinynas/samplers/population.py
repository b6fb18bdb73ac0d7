"""What the evolutionary samplers share: ranking finished trials, decoding their archs, and handing a bred
child to Optuna as the trial's parameters.

A child is bred once per trial in :meth:`PopulationSampler.sample_relative`; the parameters Optuna already
knows from earlier trials go back as relative parameters, and any conditional parameter no earlier trial
had (a deeper stage, say) is answered from the same child by :meth:`sample_independent`. The parents'
trial numbers and the operator are stored on the trial (system attrs ``tinynas:parents`` and
``tinynas:operator``) so a study shows how every child was made.
"""

from __future__ import annotations

import abc
import random
from typing import Any, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FixedTrial, FrozenTrial, TrialState

from search_spaces.base import ArchSpec, SearchSpace

PARENTS_KEY = "tinynas:parents"
OPERATOR_KEY = "tinynas:operator"


def is_feasible(t: FrozenTrial) -> bool:
    """Feasible when every constraint is ≤ 0 (a trial without constraints is feasible)."""
    return all(v <= 0 for v in t.constraints.values())


def violation(t: FrozenTrial) -> float:
    return float(sum(v for v in t.constraints.values() if v > 0))


def pareto_ranks(losses: np.ndarray) -> np.ndarray:
    """Non-domination rank (0 = Pareto front) of each row of ``losses`` (every column minimised)."""
    n = len(losses)
    ranks = np.full(n, -1, dtype=int)
    if n == 0:
        return ranks
    le = (losses[:, None, :] <= losses[None, :, :]).all(axis=2)
    lt = (losses[:, None, :] < losses[None, :, :]).any(axis=2)
    dominates = le & lt  # dominates[i, j]: i dominates j
    rank, left = 0, np.ones(n, dtype=bool)
    while left.any():
        dominated = (dominates[left][:, left]).any(axis=0)
        front = np.flatnonzero(left)[~dominated]
        ranks[front] = rank
        left[front] = False
        rank += 1
    return ranks


def rank_trials(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[FrozenTrial]:
    """``trials`` best first: feasible before infeasible; feasible by Pareto rank, then by the first
    objective (accuracy in tinynas studies); infeasible by their total constraint violation."""
    feasible = [t for t in trials if is_feasible(t)]
    infeasible = sorted((t for t in trials if not is_feasible(t)), key=lambda t: (violation(t), t.number))
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
    losses = np.array([np.asarray(t.values, dtype=float) * signs for t in feasible]).reshape(len(feasible), len(signs))
    ranks = pareto_ranks(losses)
    order = sorted(range(len(feasible)), key=lambda i: (ranks[i], losses[i, 0], feasible[i].number))
    return [feasible[i] for i in order] + infeasible


class PopulationSampler(BaseSampler, abc.ABC):
    """Base of samplers that breed archs with a :class:`SearchSpace`'s ``mutate`` / ``crossover``.

    Until ``population_size`` trials have finished, parameters come from Optuna's ``RandomSampler``;
    afterwards each trial gets a child of finished trials (:meth:`breed`).
    """

    def __init__(self, space: SearchSpace, population_size: int, mutate_prob: float, seed: int | None,
                 max_retries: int):
        if population_size < 2:
            raise ValueError(f"population_size={population_size} must be at least 2")
        if not 0.0 < mutate_prob <= 1.0:
            raise ValueError(f"mutate_prob={mutate_prob} must be in (0, 1]")
        self.space, self.population_size, self.mutate_prob = space, int(population_size), float(mutate_prob)
        self.max_retries = int(max_retries)
        self._seed = seed
        self._random = RandomSampler(seed=seed)
        self._rng = random.Random(seed)
        self._children: dict[int, dict[str, Any]] = {}  # trial id → the child's params

    # -- what subclasses decide -------------------------------------------------------------------
    @abc.abstractmethod
    def breed(self, study: optuna.Study, finished: list[FrozenTrial], seen: set[str],
              rng: random.Random) -> tuple[ArchSpec, list[FrozenTrial], str]:
        """A child arch, its parents and the operator's name, from the finished trials (oldest first)."""

    # -- helpers -----------------------------------------------------------------------------------
    def arch_of(self, t: FrozenTrial) -> ArchSpec | None:
        """The trial's arch: its ``arch`` user attr, else rebuilt from its parameters (None if neither works)."""
        try:
            if "arch" in t.user_attrs:
                return self.space.decode(t.user_attrs["arch"])
            return self.space.sample(FixedTrial(t.params, t.number))
        except (ValueError, KeyError, TypeError):
            return None

    def mutant(self, parent: ArchSpec, seen: set[str], rng: random.Random) -> ArchSpec:
        """A mutation of ``parent`` that differs from it and, where possible, from every arch already seen."""
        child = parent
        for _ in range(self.max_retries):
            child = self.space.mutate(parent, rng, self.mutate_prob)
            if child.hash != parent.hash and child.hash not in seen:
                break
        return child

    def _trial_rng(self, number: int) -> random.Random:
        # Seeded per trial number: a resumed study breeds the same child for the same history.
        return random.Random(f"{self._seed}:{number}") if self._seed is not None else self._rng

    # -- Optuna's sampler interface ----------------------------------------------------------------
    def reseed_rng(self) -> None:
        self._random.reseed_rng()
        self._rng = random.Random()

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        """Every parameter any finished trial had (conditional ones included), with its latest distribution."""
        space: dict[str, BaseDistribution] = {}
        for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True):
            space.update(t.distributions)
        return {k: v for k, v in space.items() if not v.single()}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        complete = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)
        archs = {t.number: self.arch_of(t) for t in complete}
        finished = [t for t in complete if t.values is not None and archs[t.number] is not None]
        if len(finished) < self.population_size:
            return {}  # the first population is random (sample_independent → RandomSampler)
        seen = {archs[t.number].hash for t in finished}
        child, parents, operator = self.breed(study, finished, seen, self._trial_rng(trial.number))
        params = self.space.params(child)
        self._children[trial._trial_id] = params
        study._storage.set_trial_system_attr(trial._trial_id, PARENTS_KEY, [p.number for p in parents])
        study._storage.set_trial_system_attr(trial._trial_id, OPERATOR_KEY, operator)
        return {k: v for k, v in params.items() if k in search_space}

    def sample_independent(self, study, trial, param_name, param_distribution):
        child = self._children.get(trial._trial_id)
        if child is not None and param_name in child:
            value = child[param_name]
            try:
                if param_distribution._contains(param_distribution.to_internal_repr(value)):
                    return value
            except (ValueError, TypeError):
                pass
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._children.pop(trial._trial_id, None)
