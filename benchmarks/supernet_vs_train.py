"""`tinynas search evaluator=supernet` against `evaluator=train` at equal wall-clock time on the default
experiment: which front holds the better archs, judged by the archs' stand-alone accuracy.

    python benchmarks/supernet_vs_train.py [--minutes 15] [--report-at MIN ...] [--out runs/bench/supernet_vs_train]
                                           [--standalone-seeds 2] [--trained-from earlier.json] [--plot out.png]
                                           [--json out.json] [--evaluator-set EVALUATOR:KEY=VALUE ...]
                                           [-- overrides of both searches ...]

Both searches run at once (``tinynas search experiment=mnist evaluator=<name> timeout_s=<budget>
n_trials=10000 deploy=false threads=1``; ``--evaluator-set supernet:ema_decay=0 adds
``evaluator.ema_decay=0`` to the supernet search only), one torch thread each, so they share the machine's load), each in
``<out>/<evaluator>``; a search whose ``results.json`` exists is not run again (delete the folder to rerun). The
supernet search's clock includes its super-network training. Only trials finished within the budget, measured
from the searches' common start, count: a trial that started before the budget ran out but ended after it
(Optuna lets it finish) is left out. ``--report-at`` compares the fronts also at earlier times of the same
runs (the trials finished by then).

Each search's front (accuracy as its evaluator scored it vs peak SRAM) is then judged on one scale: every arch
on either front is trained stand-alone as ``benchmarks/supernet.py`` trains its ground truth (``--standalone-
seeds`` seeds, 3 epochs on 1,500 images, validation accuracy; ``--trained-from`` reuses the accuracies of a
``--json`` written earlier by either benchmark, per arch hash). Figures per evaluator: trials and archs scored in
the budget, front size, the hypervolume of its front archs re-ranked by stand-alone accuracy (the area of the
(SRAM, accuracy) region they dominate, SRAM from 0 to the budget and accuracy from 0 to 1: 1 would be an arch of
accuracy 1 at no SRAM), the best stand-alone accuracy, and the coverage C(A, B): the fraction of B's front archs
that an arch of A's front dominates or equals in (stand-alone accuracy, SRAM). ``--plot`` draws both fronts:
their own scores, and the stand-alone accuracies.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# benchmarks/ holds scripts named like the modules they measure (estimators.py): keep it off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import numpy as np
import optuna
import torch
import yaml

from search_spaces import get_space
from tinynas.data import load_dataset
from tinynas.paths import CONF_DIR
from tinynas.search import is_feasible, is_scored
from tinynas.storage import make_storage

EVALUATORS = ("train", "supernet")
ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("supernet_benchmark", Path(__file__).with_name("supernet.py"))
supernet_benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(supernet_benchmark)


def run_searches(out: Path, budget_s: float, extra: list[str], own: dict[str, list[str]]) -> float:
    """Start both searches together (those without results.json); wait; the common start as a UNIX time."""
    start, procs = time.time(), {}
    for name in EVALUATORS:
        run = out / name
        if (run / "results.json").is_file():
            print(f"{name}: {run}/results.json exists; not searching again", flush=True)
            continue
        run.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "tinynas.cli", "search", "experiment=mnist", f"evaluator={name}",
               f"timeout_s={budget_s}", "n_trials=10000", "deploy=false", "logger=none", "threads=1",
               f"study_name=vs-{name}", f"hydra.run.dir={run.resolve()}", *extra, *own.get(name, [])]
        log = open(run / "benchmark.log", "w")
        print(f"{name}: {' '.join(cmd[2:])}", flush=True)
        procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        (run / "start.txt").write_text(str(start))
    for name, p in procs.items():
        if p.wait():
            sys.exit(f"{name} search failed (exit {p.returncode}); see {out / name / 'benchmark.log'}")
    return start


def scored_in_budget(run: Path, budget_s: float) -> tuple[list, dict]:
    """(the feasible scored trials finished within ``budget_s`` of the start, the first of each arch, by completion;
    the search's results.json, the count of all trials finished by then and the minute of the first score)."""
    results = json.loads((run / "results.json").read_text())
    storage, _ = make_storage(None, run)
    study = optuna.load_study(study_name=results["study"]["name"], storage=storage)
    start = float((run / "start.txt").read_text())
    end = dt.datetime.fromtimestamp(start + budget_s)
    done = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete is not None and t.datetime_complete <= end]
    scored = {}  # one trial per arch: a repeated arch reuses its first trial's score
    for t in sorted((t for t in done if is_feasible(t) and is_scored(t)), key=lambda t: t.datetime_complete):
        scored.setdefault(t.user_attrs["arch_hash"], t)
    scored = list(scored.values())
    first = (scored[0].datetime_complete.timestamp() - start) / 60 if scored else None
    return scored, {"results": results, "finished": len(done), "first_score_min": first}


def front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (accuracy ↑, SRAM ↓) points that no other point dominates, by SRAM."""
    keep = [i for i, (a, s) in enumerate(points)
            if not any(a2 >= a and s2 <= s and (a2, s2) != (a, s) for a2, s2 in points)]
    return sorted(keep, key=lambda i: points[i][1])


def hypervolume(points: list[tuple[float, float]], sram_budget: float) -> float:
    """Area dominated by (accuracy, SRAM) points within SRAM [0, budget] × accuracy [0, 1], as a fraction."""
    area, best = 0.0, 0.0
    pts = sorted((p for p in points if p[1] <= sram_budget), key=lambda p: p[1])
    for k, (acc, sram) in enumerate(pts):
        best = max(best, acc)
        right = pts[k + 1][1] if k + 1 < len(pts) else sram_budget
        area += best * (right - sram)
    return area / sram_budget


def coverage(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Fraction of ``b``'s points that a point of ``a`` dominates or equals (Zitzler's C metric)."""
    return sum(any(pa >= pb and sa <= sb for pa, sa in a) for pb, sb in b) / max(len(b), 1)


def plot(path: Path, fronts: dict, sram_budget: float, minutes: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, colour in zip(EVALUATORS, ("tab:blue", "tab:orange")):
        rows = fronts[name]
        for ax, key in zip(axes, ("score", "standalone")):
            kb = [r["sram_bytes"] / 1024 for r in rows]
            ax.plot(kb, [r[key] for r in rows], "o", color=colour, label=f"evaluator={name} ({len(rows)} archs)")
            best = [i for i in front([(r[key], r["sram_bytes"]) for r in rows])]
            ax.step([kb[i] for i in best], [rows[i][key] for i in best], where="post", color=colour, alpha=0.6)
    axes[0].set(title="front as each search scored it", ylabel="search's accuracy score")
    axes[1].set(title="the same archs trained stand-alone", ylabel="stand-alone val accuracy")
    for ax in axes:
        ax.set_xlabel("peak SRAM (kB)")
        ax.axvline(sram_budget / 1024, color="grey", lw=0.8, ls="--")
        ax.legend(fontsize=8)
    fig.suptitle(f"default experiment, {minutes:g} min of search each (run at once, one thread each)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget of each search")
    p.add_argument("--report-at", type=float, nargs="*", default=[], metavar="MIN",
                   help="also compare the fronts of the trials finished by these earlier times")
    p.add_argument("--out", type=Path, default=Path("runs/bench/supernet_vs_train"))
    p.add_argument("--standalone-seeds", type=int, default=2)
    p.add_argument("--standalone-epochs", type=int, default=3)
    p.add_argument("--standalone-samples", type=int, default=1500)
    p.add_argument("--trained-from", type=Path, help="a --json of either benchmark: reuse its stand-alone accuracies")
    p.add_argument("--json", type=Path, help="write the figures and rows here")
    p.add_argument("--plot", type=Path, help="write a PNG of both fronts here")
    p.add_argument("--evaluator-set", action="append", default=[], metavar="EVALUATOR:KEY=VALUE",
                   help="an evaluator option for one of the searches, e.g. supernet:epochs=8")
    p.add_argument("extra", nargs="*", help="overrides passed to both searches (after --)")
    args = p.parse_args()
    torch.set_num_threads(1)
    budget_s = args.minutes * 60
    own: dict[str, list[str]] = {}
    for item in args.evaluator_set:
        name, sep, setting = item.partition(":")
        if name not in EVALUATORS or "=" not in setting:
            sys.exit(f"--evaluator-set {item!r}: expected EVALUATOR:KEY=VALUE with EVALUATOR one of {EVALUATORS}")
        own.setdefault(name, []).append(f"evaluator.{setting}")
    run_searches(args.out, budget_s, args.extra, own)

    space_cfg = yaml.safe_load((CONF_DIR / "search_space" / "mcunet_mnist.yaml").read_text())
    space = get_space(space_cfg["name"], space_cfg["options"])
    data = load_dataset(yaml.safe_load((CONF_DIR / "dataset" / "mnist.yaml").read_text()))
    horizons = sorted({*args.report_at, args.minutes})
    fronts = {m: fronts_at(args.out, space, m * 60) for m in horizons}  # minutes → (fronts, figures, budget)

    archs = list({r["arch"].hash: r["arch"] for f, _, _ in fronts.values() for rows in f.values() for r in rows}.values())
    sa_args = argparse.Namespace(trained_from=args.trained_from, standalone_seeds=args.standalone_seeds,
                                 standalone_epochs=args.standalone_epochs, standalone_samples=args.standalone_samples,
                                 seed=0)
    seeds, _ = supernet_benchmark.standalone(space, data, archs, sa_args, torch.device("cpu"))
    by_hash = {a.hash: (float(np.mean(s)), s) for a, s in zip(archs, seeds)}
    figures = {}
    for minutes, (front_rows, figs, sram_budget) in fronts.items():
        judge(front_rows, figs, by_hash, sram_budget)
        figures[f"{minutes:g} min"] = figs
        print(f"\n---- after {minutes:g} min")
        for name in EVALUATORS:
            print(f"evaluator={name}: {json.dumps(figs[name])}")
            for r in front_rows[name]:
                print(f"  {r['arch'].hash}  {r['sram_bytes'] / 1024:6.1f} kB  score {r['score']:.4f}  stand-alone "
                      f"{r['standalone']:.4f}  {r['arch'].summary()}")
    if args.plot:
        plot(args.plot, fronts[args.minutes][0], fronts[args.minutes][2], args.minutes)
    if args.json:  # rows in benchmarks/supernet.py's format, so either benchmark can reuse them (--trained-from)
        rows = [{"arch": a.to_dict(), "arch_hash": a.hash, "trained": by_hash[a.hash][0],
                 "trained_seeds": by_hash[a.hash][1]} for a in archs]
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "figures": figures,
                                         "rows": rows}, indent=1))


def fronts_at(out: Path, space, budget_s: float) -> tuple[dict, dict, int]:
    """Per evaluator, its front of the trials finished within ``budget_s`` (rows), its figures; the SRAM budget."""
    fronts, figures = {}, {}
    for name in EVALUATORS:
        trials, info = scored_in_budget(out / name, budget_s)
        sram_budget = info["results"]["budgets"]["sram_bytes"]
        best = front([(t.user_attrs["accuracy"], t.user_attrs["sram_bytes"]) for t in trials])
        fronts[name] = [{"arch": space.decode(trials[i].user_attrs["arch"]), "score": trials[i].user_attrs["accuracy"],
                         "sram_bytes": trials[i].user_attrs["sram_bytes"], "trial": trials[i].number} for i in best]
        figures[name] = {"trials_finished": info["finished"], "first_score_min": info["first_score_min"],
                         "archs_scored": len(trials), "front": len(best)}
    return fronts, figures, sram_budget


def judge(fronts: dict, figures: dict, by_hash: dict, sram_budget: int) -> None:
    """Add the stand-alone accuracies to the front rows and the stand-alone figures to ``figures``."""
    for name in EVALUATORS:
        for r in fronts[name]:
            r["standalone"], r["standalone_seeds"] = by_hash[r["arch"].hash]
    points = {name: [(r["standalone"], r["sram_bytes"]) for r in fronts[name]] for name in EVALUATORS}
    for name, other in zip(EVALUATORS, reversed(EVALUATORS)):
        figures[name].update(hypervolume=round(hypervolume(points[name], sram_budget), 4),
                             best_standalone=max((a for a, _ in points[name]), default=None),
                             standalone_front=len(front(points[name])),
                             coverage_of_other=coverage(points[name], points[other]) if points[other] else None)


if __name__ == "__main__":
    main()
