"""Search strategies at equal trial budgets: hypervolume after N trials, and trials until the first feasible
candidate under a tight budget.

    python benchmarks/search.py [--trials 60] [--seeds 3] [--first-seeds 10] [--mcu stm32f446] [--runtime tflm]
                                [--proxy macs|params|synflow]

Task: the MCUNet space at resolutions 32-96 (3-channel input, 10 classes) on an MCU, objectives (accuracy,
SRAM), the MCU's own SRAM and flash as budgets. Accuracy comes from the ``zero_cost`` evaluator, so the
comparison runs on a CPU in minutes: ``--proxy macs`` (default) or ``params`` (then accuracy = log(count) /
log(count of the space's largest arch), so "more MACs under the budget" is better, as MCUNet argues) or
``synflow`` (ln score / that of the largest arch; about a second an arch). It ranks strategies by how well
they find archs the proxy likes that fit, nothing more. Every trial goes through the real ``CandidateObjective``
(estimate, constraints, resampling, evaluator).

Hypervolume: ``tinynas.report.hypervolume`` of the feasible trials (1 - normalised proxy, SRAM / budget;
reference 1, 1), mean ± std over seeds. First feasible: the 1-based trial number of the first trial that fits an SRAM budget
only ``--tight-share`` of uniform random archs meet, mean and max over seeds, capped at ``--cap`` trials;
strategies run with and without constraint-aware resampling (``search.resample_attempts``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import statistics
import sys
import time
import types
import warnings
from pathlib import Path

# This file is named like the module it measures: keep its own folder off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import optuna

from estimators import estimate, load_mcu
from search_spaces import get_space
from tinynas.evaluators import EvaluationContext, make_evaluator
from tinynas.paths import MCU_DIR
from tinynas.report import hypervolume
from tinynas.samplers import make_sampler
from tinynas.search import Budgets, CandidateObjective, is_feasible
from tinynas.train import TrainConfig

OPTIONS = {"resolutions": [32, 48, 64, 80, 96]}
DATA = types.SimpleNamespace(in_channels=3, num_classes=10)
STRATEGIES = ("random", "tpe", "nsga2", "evolution", "aging")
SAMPLER_CFG = {"tpe": {"n_startup_trials": 10}, "nsga2": {"population_size": 16},
               "evolution": {"population_size": 16}, "aging": {"population_size": 16, "sample_size": 4}}


def study_for(kind, space, seed):
    return optuna.create_study(directions=["maximize", "minimize"],
                               sampler=make_sampler({"sampler": kind, **SAMPLER_CFG.get(kind, {})}, seed, space=space))


def objective_for(space, mcu, runtime, budgets, evaluator, resample, max_trials):
    return CandidateObjective(space, DATA, mcu, runtime, budgets, evaluator, ["accuracy", "sram"],
                              resample_attempts=resample, max_trials=max_trials)


def normaliser(evaluator, reference: float):
    """Proxy value → about [0, 1]: log-counts for params / macs, the ln-score itself for synflow, each over that of
    the space's largest arch (``reference``)."""
    if evaluator.proxy in ("params", "macs"):
        return lambda v: math.log(v) / math.log(reference)
    return lambda v: v / reference


def hv_and_best(study, budgets, norm) -> tuple[float, float]:
    """Hypervolume of the feasible trials and their best normalised proxy accuracy."""
    rows = [{"accuracy": norm(t.values[0]), "sram_bytes": t.user_attrs["sram_bytes"]} for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE and is_feasible(t)]
    return (hypervolume(rows, ["accuracy", "sram"], {"sram_bytes": budgets.sram_bytes}),
            max((r["accuracy"] for r in rows), default=0.0))


def first_feasible(kind, space, mcu, runtime, budgets, evaluator, seed, resample, cap) -> int:
    study = study_for(kind, space, seed)
    obj = objective_for(space, mcu, runtime, budgets, evaluator, resample, cap)

    def stop(study, trial):
        if is_feasible(trial):
            study.stop()

    study.optimize(obj, n_trials=cap, callbacks=[stop])
    found = [t.number + 1 for t in study.trials if is_feasible(t)]
    return found[0] if found else cap + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seeds", type=int, default=10)
    ap.add_argument("--cap", type=int, default=60, help="trials before giving up on a feasible one")
    ap.add_argument("--tight-share", type=float, default=0.03, help="share of random archs the tight budget admits")
    ap.add_argument("--mcu", default="stm32f446")
    ap.add_argument("--runtime", default="tflm")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--proxy", default="macs", choices=("macs", "params", "synflow"),
                    help="zero_cost proxy as the accuracy objective (the others need a dataset)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    strategies = args.strategies.split(",")

    space = get_space("mcunet", OPTIONS)
    mcu = load_mcu(args.mcu, MCU_DIR)
    big = dataclasses.replace(space.largest(space.smallest()), resolution=max(space.resolutions))
    evaluator = make_evaluator({"name": "zero_cost", "proxy": args.proxy},
                               EvaluationContext(space, DATA, "cpu", 0, TrainConfig()))
    reference = evaluator.value(big)
    norm = normaliser(evaluator, reference)
    budgets = Budgets.resolve({}, mcu)
    rng = random.Random(0)
    srams = sorted(estimate(space.to_ir(space.random(rng), 3, 10), mcu, args.runtime).sram.total_bytes
                   for _ in range(300))
    tight = Budgets(srams[int(args.tight_share * len(srams))], budgets.flash_bytes)
    print(f"task: mcunet {OPTIONS}, {mcu.name} ({args.runtime}); accuracy = evaluator=zero_cost proxy={args.proxy}, "
          f"normalised by the largest arch's {reference:.4g}")
    print(f"HV budget: SRAM {budgets.sram_bytes / 1024:.0f} kB, flash {budgets.flash_bytes / 1024:.0f} kB; "
          f"tight SRAM budget {tight.sram_bytes / 1024:.1f} kB ({args.tight_share:.0%} of 300 random archs fit)\n")

    print(f"{'strategy':<10} {'HV@' + str(args.trials) + ' (no resample)':>22} {'HV (resample 20)':>18} "
          f"{'best proxy':>11} {'feasible':>9} {'1st feasible: mean/max (no res.)':>33} {'(resample 20)':>14} {'s':>6}")
    for kind in strategies:
        t0 = time.perf_counter()
        hvs = {0: [], 20: []}
        n_feasible, best = [], []
        for resample in (0, 20):
            for seed in range(args.seeds):
                study = study_for(kind, space, seed)
                study.optimize(objective_for(space, mcu, args.runtime, budgets, evaluator, resample, args.trials),
                               n_trials=args.trials)
                hv, top = hv_and_best(study, budgets, norm)
                hvs[resample].append(hv)
                if resample == 0:
                    n_feasible.append(sum(is_feasible(t) for t in study.trials))
                    best.append(top)
        firsts = {r: [first_feasible(kind, space, mcu, args.runtime, tight, evaluator, s, r, args.cap)
                      for s in range(args.first_seeds)] for r in (0, 20)}

        def ms(xs):
            return f"{statistics.mean(xs):.3f}±{statistics.pstdev(xs):.3f}"

        def fm(xs):
            return f"{statistics.mean(xs):.1f}/{max(xs)}" + ("+" if max(xs) > args.cap else "")

        print(f"{kind:<10} {ms(hvs[0]):>22} {ms(hvs[20]):>18} {ms(best):>11} {statistics.mean(n_feasible):>9.1f} "
              f"{fm(firsts[0]):>33} {fm(firsts[20]):>14} {time.perf_counter() - t0:>6.0f}", flush=True)
    print(f"\nHV: mean±std over {args.seeds} seeds of {args.trials} trials; best proxy: the best feasible proxy "
          f"accuracy (no resampling), what MCUNet's single-objective evolution maximises; feasible: mean feasible trials of "
          f"{args.trials} (no resampling); 1st feasible: 1-based trial number over {args.first_seeds} seeds, "
          f"'+' = none within {args.cap}")


if __name__ == "__main__":
    main()
