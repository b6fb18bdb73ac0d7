"""`tinynas train arch=FILE.json`: train one arch and save its checkpoint in the run dir."""

from __future__ import annotations

import json
import logging
import sys

from tinynas.checkpoint import save_checkpoint
from tinynas.commands.common import load_arch, load_common, run_dir
from tinynas.deploy import splits_at
from tinynas.train import TrainConfig, accuracy, fit, seed_everything

log = logging.getLogger("tinynas.train")


def run(cfg):
    ctx = load_common(cfg)
    arch = load_arch(cfg, ctx.space)
    tc = TrainConfig.from_cfg(cfg.train)
    train, val, test = splits_at(ctx.data, ctx.space.input_size(arch))
    seed_everything(cfg.seed)
    model = ctx.space.build_torch(arch, ctx.data.in_channels, ctx.data.num_classes)
    log.info("training %s for %d epochs on %s", arch.hash, tc.epochs, ctx.device)
    history = fit(model, train, tc, ctx.device, seed=cfg.seed)
    metrics = {"val_accuracy": accuracy(model, val, ctx.device), "test_accuracy": accuracy(model, test, ctx.device),
               "loss_per_epoch": history}
    out = run_dir()
    path = save_checkpoint(out / "model.pt", model, arch, ctx.data.in_channels, ctx.data.num_classes, metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    log.info("val accuracy %.3f, test accuracy %.3f", metrics["val_accuracy"], metrics["test_accuracy"])
    print(path.resolve(), file=sys.stdout)
    return path
