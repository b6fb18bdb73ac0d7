"""MCUNet / OFA-style evolutionary search as an Optuna sampler (Cai et al., ICLR 2020; Lin et al., NeurIPS 2020).

After a random first population, every new trial is a child of the ``parent_ratio × population_size`` best
finished trials (feasible first, then Pareto rank, then accuracy — :func:`rank_trials`): with probability
``mutation_ratio`` a mutation of one parent (each choice resampled with ``mutate_prob``), otherwise a
crossover of two. OFA breeds whole generations; here the population is steady-state (parents are always
the current best of every finished trial), which gives the same elitist selection and works with
several workers sharing one storage.
"""

from __future__ import annotations

import random

import optuna
from optuna.trial import FrozenTrial

from search_spaces.base import ArchSpec, SearchSpace
from tinynas.samplers.population import PopulationSampler, rank_trials


class EvolutionSampler(PopulationSampler):
    def __init__(self, space: SearchSpace, population_size: int = 16, parent_ratio: float = 0.25,
                 mutation_ratio: float = 0.5, mutate_prob: float = 0.1, seed: int | None = None,
                 max_retries: int = 10):
        super().__init__(space, population_size, mutate_prob, seed, max_retries)
        if not 0.0 < parent_ratio <= 1.0:
            raise ValueError(f"parent_ratio={parent_ratio} must be in (0, 1]")
        if not 0.0 <= mutation_ratio <= 1.0:
            raise ValueError(f"mutation_ratio={mutation_ratio} must be in [0, 1]")
        self.parent_ratio, self.mutation_ratio = float(parent_ratio), float(mutation_ratio)

    @property
    def n_parents(self) -> int:
        return max(2, round(self.parent_ratio * self.population_size))

    def breed(self, study: optuna.Study, finished: list[FrozenTrial], seen: set[str],
              rng: random.Random) -> tuple[ArchSpec, list[FrozenTrial], str]:
        parents = rank_trials(finished, study.directions)[:self.n_parents]
        if rng.random() < self.mutation_ratio:
            p = rng.choice(parents)
            return self.mutant(self.arch_of(p), seen, rng), [p], "mutate"
        child, pair = None, parents[:2]
        for _ in range(self.max_retries):
            pair = rng.sample(parents, 2)
            child = self.space.crossover(self.arch_of(pair[0]), self.arch_of(pair[1]), rng)
            if child.hash not in seen:
                break
        return child, pair, "crossover"
