"""Aging (regularised) evolution as an Optuna sampler (Real et al., AAAI 2019), as μNAS uses it
(Liberis et al., 2021).

The population is the ``population_size`` most recently finished trials (a FIFO: the oldest dies as each
new one finishes). Each new trial draws ``sample_size`` members at random, takes the best of that
tournament (feasible first, then Pareto rank within the population, then accuracy — :func:`rank_trials`)
and mutates it. Selection by age rather than by fitness alone keeps a lucky early arch from dominating.
"""

from __future__ import annotations

import random

import optuna
from optuna.trial import FrozenTrial

from search_spaces.base import ArchSpec, SearchSpace
from tinynas.samplers.population import PopulationSampler, rank_trials


class AgingEvolutionSampler(PopulationSampler):
    def __init__(self, space: SearchSpace, population_size: int = 16, sample_size: int = 4,
                 mutate_prob: float = 0.1, seed: int | None = None, max_retries: int = 10):
        super().__init__(space, population_size, mutate_prob, seed, max_retries)
        if not 1 <= sample_size <= population_size:
            raise ValueError(f"sample_size={sample_size} must be between 1 and population_size={population_size}")
        self.sample_size = int(sample_size)

    def breed(self, study: optuna.Study, finished: list[FrozenTrial], seen: set[str],
              rng: random.Random) -> tuple[ArchSpec, list[FrozenTrial], str]:
        population = sorted(finished, key=lambda t: t.number)[-self.population_size:]
        order = {t.number: i for i, t in enumerate(rank_trials(population, study.directions))}
        winner = min(rng.sample(population, self.sample_size), key=lambda t: order[t.number])
        return self.mutant(self.arch_of(winner), seen, rng), [winner], "mutate"
