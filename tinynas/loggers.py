"""Experiment loggers: W&B (offline by default) or none. One run per search, one row per trial."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("tinynas")


class NullLogger:
    def log_trial(self, number: int, attrs: dict[str, Any]) -> None:
        pass

    def log_results(self, results: dict[str, Any], plot: Path | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class WandbLogger(NullLogger):
    """Logs each trial's figures and, at the end, the Pareto table and plot to a W&B run."""

    def __init__(self, run_dir: Path, project: str, name: str, mode: str, config: dict[str, Any]):
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        self._wandb = wandb
        self.run = wandb.init(project=project, name=name, mode=mode, dir=str(run_dir), config=config,
                              reinit="finish_previous")

    def log_trial(self, number: int, attrs: dict[str, Any]) -> None:
        self.run.log({k: attrs[k] for k in ("accuracy", "sram_bytes", "flash_bytes", "latency_ms", "energy_mj",
                                            "macs", "params") if k in attrs} | {"trial": number})

    def log_results(self, results: dict[str, Any], plot: Path | None = None) -> None:
        cols = ["trial", "accuracy", "sram_bytes", "flash_bytes", "latency_ms", "energy_mj", "macs", "params"]
        table = self._wandb.Table(columns=cols, data=[[r[c] for c in cols] for r in results["pareto"]])
        payload: dict[str, Any] = {"pareto": table}
        if plot is not None:
            payload["pareto_plot"] = self._wandb.Image(str(plot))
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
