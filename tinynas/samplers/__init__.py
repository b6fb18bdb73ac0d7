"""Search strategies, all Optuna samplers so every storage, dashboard and callback works with them."""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.base import SearchSpace
from tinynas.errors import ConfigError

SAMPLERS = ("tpe", "random", "nsga2", "nsga3", "evolution", "aging")


def make_sampler(cfg: dict[str, Any], seed: int, space: SearchSpace | None = None) -> optuna.samplers.BaseSampler:
    """The sampler ``cfg["sampler"]`` names (default tpe); evolution and aging breed archs through ``space``."""
    kind = cfg.get("sampler", "tpe")
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          n_startup_trials=int(cfg.get("n_startup_trials", 10)))
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=int(cfg.get("population_size", 50)))
    if kind == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=int(cfg.get("population_size", 50)))
    if kind in ("evolution", "aging"):
        if space is None:
            raise ConfigError(f"search.sampler={kind} breeds archs through the search space; pass space=")
        try:
            if kind == "evolution":
                from tinynas.samplers.evolution import EvolutionSampler

                return EvolutionSampler(space, population_size=int(cfg.get("population_size", 16)),
                                        parent_ratio=float(cfg.get("parent_ratio", 0.25)),
                                        mutation_ratio=float(cfg.get("mutation_ratio", 0.5)),
                                        mutate_prob=float(cfg.get("mutate_prob", 0.1)), seed=seed)
            from tinynas.samplers.aging import AgingEvolutionSampler

            return AgingEvolutionSampler(space, population_size=int(cfg.get("population_size", 16)),
                                         sample_size=int(cfg.get("sample_size", 4)),
                                         mutate_prob=float(cfg.get("mutate_prob", 0.1)), seed=seed)
        except ValueError as e:
            raise ConfigError(f"search.{e}") from None
    raise ConfigError(f"search.sampler={kind!r} is unknown; allowed: {', '.join(SAMPLERS)}")
