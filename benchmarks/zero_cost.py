"""Zero-cost proxies against trained accuracy: Spearman rank correlation on random archs of our own space.

    python benchmarks/zero_cost.py [--archs 40] [--epochs 2] [--train-samples 1000] [--seed 0] [--feasible] [--threads 1]

Task: the default experiment's space (``search_space=mcunet_mnist``: MCUNet at 16-24 px) on its dataset (5,000
MNIST digits), as ``tinynas search`` composes it. Each of ``--archs`` random archs (``--feasible``: only archs
that fit the experiment's MCU budgets, as the search would score) is trained by the ``train`` evaluator (the
experiment's ``train: quick`` settings, ``--epochs`` / ``--train-samples`` overriding) and scored by every
proxy of the ``zero_cost`` evaluator with the same seed. Prints each proxy's Spearman ρ (and Kendall τ) with
the validation accuracy, its p-value and its seconds per arch; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import types
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy.stats import kendalltau, spearmanr

from estimators import MCU, estimate
from search_spaces import get_space
from tinynas.data import load_dataset
from tinynas.evaluators import EvaluationContext, make_evaluator
from tinynas.evaluators.zero_cost import PROXIES
from tinynas.paths import CONF_DIR
from tinynas.search import Budgets
from tinynas.train import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the experiment's)")
    ap.add_argument("--train-samples", type=int, default=None, help="training subsample (default: the experiment's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--feasible", action="store_true", help="only archs that fit the MCU's SRAM and flash")
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: no spinning on a shared machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search")
    space = get_space(cfg.search_space.name, OmegaConf.to_container(cfg.search_space.options, resolve=True))
    data = load_dataset(OmegaConf.to_container(cfg.dataset, resolve=True))
    train = OmegaConf.to_container(cfg.train, resolve=True)
    train.update({k: v for k, v in (("epochs", args.epochs), ("max_train_samples", args.train_samples)) if v})
    train_cfg = TrainConfig.from_cfg(train)
    mcu = MCU.from_dict(OmegaConf.to_container(cfg.mcu, resolve=True))
    budgets = Budgets.resolve({}, mcu)
    ctx = EvaluationContext(space, data, torch.device("cpu"), args.seed, train_cfg)

    rng, archs, seen = random.Random(args.seed), [], set()
    while len(archs) < args.archs:
        arch = space.random(rng)
        if arch.hash in seen:
            continue
        seen.add(arch.hash)
        if args.feasible:
            est = estimate(space.to_ir(arch, data.in_channels, data.num_classes), mcu, cfg.runtime)
            if any(v > 0 for v in budgets.violations(est.sram.total_bytes, est.flash.total_bytes,
                                                     est.latency_ms).values()):
                continue
        archs.append(arch)
    print(f"{len(archs)} archs of {cfg.search_space.name} {dict(cfg.search_space.options)}"
          f"{' fitting ' + mcu.name if args.feasible else ''}; {data.name}; training {train_cfg.epochs} epochs on "
          f"{train_cfg.max_train_samples or 'all'} samples ({train_cfg.optimizer}, lr {train_cfg.lr})", flush=True)

    trainer = make_evaluator({"name": "train"}, ctx)
    proxies = args.proxies.split(",")
    scorers = {p: make_evaluator({"name": "zero_cost", "proxy": p}, ctx) for p in proxies}
    acc, scores = [], {p: [] for p in proxies}
    seconds = {p: 0.0 for p in ["train", *proxies]}
    for i, arch in enumerate(archs):
        t0 = time.perf_counter()
        acc.append(trainer.score(types.SimpleNamespace(number=i), arch)["accuracy"])
        seconds["train"] += time.perf_counter() - t0
        for p, ev in scorers.items():
            t0 = time.perf_counter()
            scores[p].append(ev.value(arch))
            seconds[p] += time.perf_counter() - t0
        print(f"  {i + 1:>3}/{len(archs)} {arch.hash[:8]} res {arch.resolution} w {arch.width}  acc {acc[-1]:.3f}  "
              + "  ".join(f"{p} {scores[p][-1]:.4g}" for p in proxies), file=sys.stderr, flush=True)

    print(f"\nval accuracy: min {min(acc):.3f}, median {sorted(acc)[len(acc) // 2]:.3f}, max {max(acc):.3f}")
    print(f"{'proxy':<10} {'Spearman rho':>13} {'p':>9} {'Kendall tau':>12} {'s/arch':>8}")
    result = {}
    for p in proxies:
        rho, pval = spearmanr(scores[p], acc)
        tau, _ = kendalltau(scores[p], acc)
        result[p] = {"spearman": round(float(rho), 4), "p": float(f"{pval:.3g}"), "kendall": round(float(tau), 4),
                     "s_per_arch": round(seconds[p] / len(archs), 4)}
        print(f"{p:<10} {rho:>13.3f} {pval:>9.2g} {tau:>12.3f} {seconds[p] / len(archs):>8.3f}")
    print(f"{'(train)':<10} {'':>13} {'':>9} {'':>12} {seconds['train'] / len(archs):>8.3f}")
    print(json.dumps({"n_archs": len(archs), "epochs": train_cfg.epochs, "feasible_only": args.feasible,
                      "proxies": result, "train_s_per_arch": round(seconds["train"] / len(archs), 3)}))


if __name__ == "__main__":
    main()
