"""Experiment loggers: W&B (offline by default) or none. One run per search, one row per trial."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("tinynas")

TRIAL_COLUMNS = ("trial", "state", "scored", "feasible", "accuracy", "sram_bytes", "flash_bytes", "latency_ms",
                 "energy_mj", "macs", "params", "evaluator", "arch_hash")


def trial_rows(trials) -> list[dict[str, Any]]:
    """One row per finished trial (Optuna ``FrozenTrial``s) with :data:`TRIAL_COLUMNS`: the W&B trial table."""
    from tinynas.search import FINISHED, is_feasible, is_scored

    rows = []
    for t in trials:
        if t.state not in FINISHED:
            continue
        a = t.user_attrs
        rows.append({"trial": t.number, "state": t.state.name, "scored": is_scored(t), "feasible": is_feasible(t),
                     **{k: a.get(k) for k in TRIAL_COLUMNS[4:11]}, "evaluator": a.get("evaluator"),
                     "arch_hash": a.get("arch_hash")})
    return rows


class NullLogger:
    def log_trial(self, number: int, attrs: dict[str, Any]) -> None:
        pass

    def log_results(self, results: dict[str, Any], plot: Path | None = None,
                    trials: list[dict[str, Any]] | None = None) -> None:
        """The search's results.json, its Pareto plot and :func:`trial_rows` of every finished trial."""

    def close(self) -> None:
        pass


class WandbLogger(NullLogger):
    """One W&B run per search: each trial's figures as it finishes; at the end the Pareto table and plot, a
    table of every trial and a Pareto scatter (accuracy against SRAM of the scored trials; the table flags the
    front)."""

    def __init__(self, run_dir: Path, project: str, name: str, mode: str, config: dict[str, Any]):
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        self._wandb = wandb
        self.run = wandb.init(project=project, name=name, mode=mode, dir=str(run_dir), config=config,
                              reinit="finish_previous")

    def log_trial(self, number: int, attrs: dict[str, Any]) -> None:
        """One row per trial, keyed by Optuna's trial number (as the console, summary.md and results.json)."""
        self.run.log({k: attrs[k] for k in ("accuracy", "sram_bytes", "flash_bytes", "latency_ms", "energy_mj",
                                            "macs", "params", "arch_hash", "retry_of") if k in attrs}
                     | {"trial": number})

    def log_results(self, results: dict[str, Any], plot: Path | None = None,
                    trials: list[dict[str, Any]] | None = None) -> None:
        wandb = self._wandb
        cols = ["trial", "arch_hash", "accuracy", "sram_bytes", "flash_bytes", "latency_ms", "energy_mj", "macs",
                "params"]
        table = wandb.Table(columns=cols, data=[[r[c] for c in cols] for r in results["pareto"]])
        payload: dict[str, Any] = {"pareto": table}
        if plot is not None:
            payload["pareto_plot"] = wandb.Image(str(plot))
        if trials:
            front = {r["trial"] for r in results["pareto"]}
            cols = [*TRIAL_COLUMNS, "pareto"]
            payload["trials"] = wandb.Table(columns=cols, data=[[r.get(c) for c in TRIAL_COLUMNS] + [r["trial"] in front]
                                                                for r in trials])
            scored = wandb.Table(columns=["sram_kB", "accuracy", "trial", "pareto"],
                                 data=[[r["sram_bytes"] / 1024, r["accuracy"], r["trial"], r["trial"] in front]
                                       for r in trials if r["scored"] and r["state"] == "COMPLETE"])
            payload["pareto_scatter"] = wandb.plot.scatter(scored, "sram_kB", "accuracy",
                                                           title="accuracy vs estimated peak SRAM (scored trials)")
        self.run.log(payload)
        self.run.summary.update({f"deployed/{k}": v for k, v in (results.get("deployed") or {}).items()
                                 if isinstance(v, (int, float))})

    def close(self) -> None:
        self.run.finish()


def make_logger(cfg: dict[str, Any], run_dir: Path, name: str, config: dict[str, Any]) -> NullLogger:
    kind = cfg.get("name", "none")
    if kind == "none":
        return NullLogger()
    if kind == "wandb":
        return WandbLogger(run_dir, cfg.get("project", "tinynas"), name, cfg.get("mode", "offline"), config)
    from tinynas.errors import ConfigError

    raise ConfigError(f"logger={kind!r} is unknown; allowed: wandb, none")
