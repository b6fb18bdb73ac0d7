"""Search strategies, all Optuna samplers so every storage, dashboard and callback works with them."""

from __future__ import annotations

from typing import Any

import optuna

from tinynas.errors import ConfigError


def make_sampler(cfg: dict[str, Any], seed: int) -> optuna.samplers.BaseSampler:
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
    raise ConfigError(f"search.sampler={kind!r} is unknown; allowed: tpe, random, nsga2, nsga3")
