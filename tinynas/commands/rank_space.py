"""`tinynas rank_space`: MCUNet's first stage (TinyNAS, Lin et al., NeurIPS 2020) — pick the search space.

For every (width, resolution) sub-space, draw ``n`` random archs, keep those that fit the MCU's budgets, and
rank the sub-spaces by the MACs of the fitting ones (MCUNet: a sub-space whose fitting models have more
MACs has more capacity and yields more accurate models; ``rank_by`` picks mean, median or 80th percentile).
A sub-space whose smallest arch misses a budget has no fitting arch and is not sampled. Prints a table (or
JSON), optionally writes the JSON and a search-space override for the best sub-space.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from estimators import MCU, estimate
from search_spaces import get_space
from tinynas.commands.common import check_runtime, load_mcu_cfg
from tinynas.errors import ConfigError
from tinynas.report import write_json
from tinynas.search import Budgets

RANK_BY = {"mean": np.mean, "p50": lambda x: np.percentile(x, 50), "p80": lambda x: np.percentile(x, 80)}


def rank_subspaces(space_name: str, options: dict[str, Any] | None, mcu: MCU, runtime: str, budgets: Budgets,
                   in_channels: int, num_classes: int, n: int = 100, seed: int = 0,
                   rank_by: str = "mean") -> list[dict[str, Any]]:
    """One row per (width, resolution) sub-space, best first: the share of ``n`` random archs that fit and the
    MACs statistics of those that do."""
    if rank_by not in RANK_BY:
        raise ConfigError(f"rank_by={rank_by!r} is unknown; allowed: {', '.join(RANK_BY)}")
    if n < 1:
        raise ConfigError(f"n={n} must be a positive number of archs per sub-space")
    options = dict(options or {})
    base = get_space(space_name, options)
    if not (hasattr(base, "widths") and hasattr(base, "resolutions")):
        raise ConfigError(f"search space {space_name!r} has no widths and resolutions to rank; "
                          f"rank_space works on spaces that have both (mcunet, mobilenetv1, mobilenetv3, ...)")

    def fits_macs(space, arch) -> tuple[bool, int]:
        est = estimate(space.to_ir(arch, in_channels, num_classes), mcu, runtime)
        v = budgets.violations(est.sram.total_bytes, est.flash.total_bytes, est.latency_ms)
        return all(x <= 0 for x in v.values()), est.macs

    rows = []
    for w in base.widths:
        for r in base.resolutions:
            sub = get_space(space_name, {**options, "widths": [w], "resolutions": [r]})
            macs: list[int] = []
            if fits_macs(sub, sub.smallest())[0]:
                rng = random.Random(f"{seed}:{w}:{r}")
                for _ in range(n):
                    ok, m = fits_macs(sub, sub.random(rng))
                    if ok:
                        macs.append(m)
            stats = {k: float(f(macs)) if macs else 0.0 for k, f in RANK_BY.items()}
            rows.append({"width": w, "resolution": r, "n": n, "n_fit": len(macs), "fit_fraction": len(macs) / n,
                         **{f"{k}_macs": v for k, v in stats.items()}, "max_macs": max(macs, default=0)})
    rows.sort(key=lambda row: (-row[f"{rank_by}_macs"], -row["fit_fraction"], row["width"], row["resolution"]))
    for i, row in enumerate(rows):
        row["rank"] = i + 1
    return rows


def table(rows: list[dict[str, Any]], rank_by: str) -> str:
    lines = [f"{'rank':>4}  {'width':>5}  {'res':>4}  {'fit':>9}  {'mean MMACs':>10}  {'p50':>7}  {'p80':>7}  "
             f"{'max':>7}   (ranked by {rank_by})"]
    for r in rows:
        lines.append(f"{r['rank']:>4}  {r['width']:>5}  {r['resolution']:>4}  {r['n_fit']:>4}/{r['n']:<4}  "
                     f"{r['mean_macs'] / 1e6:>10.2f}  {r['p50_macs'] / 1e6:>7.2f}  {r['p80_macs'] / 1e6:>7.2f}  "
                     f"{r['max_macs'] / 1e6:>7.2f}")
    return "\n".join(lines)


def override_text(best: dict[str, Any]) -> str:
    return f"search_space.options.widths=[{best['width']}] search_space.options.resolutions=[{best['resolution']}]"


def override_yaml(best: dict[str, Any]) -> str:
    return ("# @package _global_\n# The best (width, resolution) sub-space from `tinynas rank_space`.\n"
            f"search_space:\n  options:\n    widths: [{best['width']}]\n    resolutions: [{best['resolution']}]\n")


def run(cfg) -> list[dict[str, Any]]:
    mcu = load_mcu_cfg(cfg)
    budgets = Budgets.resolve(OmegaConf.to_container(cfg.budgets, resolve=True), mcu)
    ss = OmegaConf.to_container(cfg.search_space, resolve=True)
    rows = rank_subspaces(ss["name"], ss.get("options"), mcu, check_runtime(cfg.runtime), budgets,
                          int(cfg.dataset.in_channels), int(cfg.dataset.num_classes), n=int(cfg.n),
                          seed=int(cfg.seed), rank_by=str(cfg.rank_by))
    best = rows[0]
    doc = {"search_space": ss["name"], "mcu": mcu.name, "runtime": cfg.runtime,
           "budgets": {"sram_bytes": budgets.sram_bytes, "flash_bytes": budgets.flash_bytes,
                       "latency_ms": budgets.latency_ms},
           "rank_by": cfg.rank_by, "subspaces": rows,
           "best": None if best["n_fit"] == 0 else {"width": best["width"], "resolution": best["resolution"],
                                                    "override": override_text(best)}}
    if cfg.format not in ("table", "json"):
        raise ConfigError(f"format={cfg.format!r} is unknown; allowed: table, json")
    if cfg.out:
        write_json(Path(cfg.out), doc)
    if doc["best"] is not None and cfg.override:
        Path(cfg.override).write_text(override_yaml(best))
    if cfg.format == "json":
        print(json.dumps(doc, indent=1))
    else:
        print(table(rows, cfg.rank_by))
        if doc["best"] is None:
            print(f"no sub-space has an arch that fits on {mcu.name}; raise the budgets or add smaller choices")
        else:
            print(f"best: width {best['width']}, resolution {best['resolution']} — search it with:\n  "
                  f"{doc['best']['override']}")
    sys.stdout.flush()
    return rows
