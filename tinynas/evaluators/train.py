"""``evaluator=train``: short proxy training of each candidate, with optional successive halving on epochs.

Successive halving (``successive_halving: true``) follows the asynchronous rule of ASHA (Li et al. 2020) with
rungs at ``min_epochs · η^k`` epochs (η = ``reduction_factor``) below ``max_epochs``. At each rung the trial
measures its validation accuracy (batch norm recalibrated, as after training), records it in the user attr
``rung_accuracies`` (``{"<epochs>": accuracy}``, so workers on the same storage see each other's) and goes on
only if it is among the best ``max(1, n // η)`` of the ``n`` trials that reached that rung, itself included
(Optuna's ``SuccessiveHalvingPruner`` rule, which Optuna cannot apply to multi-objective studies:
``Trial.report`` and ``should_prune`` are single-objective only).

A stopped trial is recorded as PRUNED (``optuna.TrialPruned``), not COMPLETE with its low-fidelity accuracy:
an accuracy after one epoch is not comparable with the accuracies after ``max_epochs`` that the other trials
report, so it must not enter the Pareto front (a cheap arch stopped early would sit there with a misleadingly
low accuracy, or dominate nothing it should). PRUNED trials have no objective values: Optuna's Pareto front,
NSGA-II and the population samplers ignore them, TPE counts them among its bad trials; they count towards
``n_trials`` and the reports list them as pruned. Their figures (``sram_bytes`` ...), ``rung_accuracies`` and
``stopped_at_epoch`` stay in the trial's user attrs.

The random state used for training is set aside while a rung is measured, so a trial that passes every rung
ends with exactly the accuracy it would have without successive halving.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna
import torch

from search_spaces.base import ArchSpec
from tinynas.data import at_resolution
from tinynas.errors import ConfigError
from tinynas.evaluators.base import BaseEvaluator, EvaluationContext, register_evaluator
from tinynas.train import accuracy, fit, recalibrate_bn, seed_everything

RUNG_ATTR = "rung_accuracies"


def rungs(min_epochs: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """Epoch counts at which a trial is compared with the others: ``min_epochs · η^k < max_epochs``."""
    out, r = [], min_epochs
    while r < max_epochs:
        out.append(r)
        r *= reduction_factor
    return out


def promotable(value: float, competing: list[float], reduction_factor: int) -> bool:
    """Whether ``value`` is among the best ``max(1, n // η)`` of ``competing`` (which holds ``value`` too)."""
    keep = max(1, len(competing) // reduction_factor)
    return value >= sorted(competing, reverse=True)[keep - 1]


@register_evaluator
class TrainEvaluator(BaseEvaluator):
    """Trains the candidate for ``max_epochs`` (default ``train.epochs``) and returns its validation accuracy;
    with ``successive_halving`` a trial that falls behind at a rung stops there (PRUNED)."""

    name = "train"

    def __init__(self, ctx: EvaluationContext, successive_halving: bool = False, min_epochs: int = 1,
                 reduction_factor: int = 3, max_epochs: int | None = None, **unknown: Any):
        super().__init__(ctx, **unknown)
        max_epochs = ctx.train_cfg.epochs if max_epochs is None else int(max_epochs)
        if max_epochs < 1:
            raise ConfigError(f"evaluator.max_epochs={max_epochs} must be at least 1 (null: train.epochs)")
        if successive_halving and not 1 <= int(min_epochs) <= max_epochs:
            raise ConfigError(f"evaluator.min_epochs={min_epochs} must be between 1 and max_epochs={max_epochs}")
        if successive_halving and int(reduction_factor) < 2:
            raise ConfigError(f"evaluator.reduction_factor={reduction_factor} must be an integer ≥ 2")
        self.train_cfg = dataclasses.replace(ctx.train_cfg, epochs=max_epochs)
        self.rungs = rungs(int(min_epochs), int(reduction_factor), max_epochs) if successive_halving else []
        self.reduction_factor = int(reduction_factor)
        self._splits: dict[tuple[int, int], tuple] = {}

    def splits(self, size: tuple[int, int]):
        """(train, val) at the input ``size`` (height, width), resized once per size."""
        if size not in self._splits:
            data = self.ctx.data
            self._splits[size] = (at_resolution(data.train, size), at_resolution(data.val, size))
        return self._splits[size]

    def score(self, trial, arch: ArchSpec) -> dict[str, Any]:
        train, val = self.splits(self.ctx.space.input_size(arch))
        seed = self.ctx.seed + trial.number
        seed_everything(seed)
        model = self.ctx.space.build_torch(arch, self.ctx.data.in_channels, self.ctx.data.num_classes)
        stop = _Rungs(self, trial, model, train, val) if self.rungs else None
        try:
            fit(model, train, self.train_cfg, self.ctx.device, seed=seed, on_epoch_end=stop,
                stage=f"trial {trial.number}")
        except Exception as e:  # recorded as FAIL with its reason; the study goes on
            trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}")
            raise
        if stop is not None and stop.stopped_at is not None:
            trial.set_user_attr("stopped_at_epoch", stop.stopped_at)
            raise optuna.TrialPruned(f"successive halving: stopped after {stop.stopped_at} epochs, accuracy "
                                     f"{stop.last:.3f} is not in the top 1/{self.reduction_factor} at that rung")
        attrs: dict[str, Any] = {"accuracy": accuracy(model, val, self.ctx.device), "epochs": self.train_cfg.epochs}
        if stop is not None:
            attrs[RUNG_ATTR] = stop.record
        return attrs


class _Rungs:
    """``fit``'s ``on_epoch_end``: at each rung, measure, record and compare; False stops the training."""

    def __init__(self, ev: TrainEvaluator, trial, model, train, val):
        self.ev, self.trial, self.model, self.val = ev, trial, model, val
        self.x = torch.from_numpy(train.x)
        self.record: dict[str, float] = {}
        self.stopped_at: int | None = None
        self.last = 0.0

    def __call__(self, epoch: int, _loss: float) -> bool:
        done = epoch + 1
        if done not in self.ev.rungs:
            return True
        ev = self.ev
        with torch.random.fork_rng(devices=[]):  # dropout draws here must not shift the training's draws
            recalibrate_bn(self.model, self.x, ev.ctx.device, ev.train_cfg.batch_size)
            acc = accuracy(self.model, self.val, ev.ctx.device)
        self.model.train()
        self.last, key = acc, str(done)
        self.record[key] = acc
        self.trial.set_user_attr(RUNG_ATTR, dict(self.record))
        if len(self.trial.study.directions) == 1:
            self.trial.report(acc, step=done)
        others = [t.user_attrs[RUNG_ATTR][key] for t in self.trial.study.get_trials(deepcopy=False)
                  if t.number != self.trial.number and key in t.user_attrs.get(RUNG_ATTR, {})]
        if promotable(acc, others + [acc], ev.reduction_factor):
            return True
        self.stopped_at = done
        return False
