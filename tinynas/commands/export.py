"""`tinynas export arch=FILE.json [checkpoint=FILE] out=DIR`: int8 TFLite + firmware files, checked in TFLM."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from tinynas.checkpoint import load_checkpoint
from tinynas.commands.common import load_arch, load_common, run_dir
from tinynas.deploy import export_checked
from tinynas.train import seed_everything


def run(cfg):
    ctx = load_common(cfg)
    arch = load_arch(cfg, ctx.space)
    if cfg.checkpoint:
        model, _ = load_checkpoint(cfg.checkpoint, ctx.space, arch, ctx.data.in_channels, ctx.data.num_classes)
    else:
        seed_everything(cfg.seed)
        model = ctx.space.build_torch(arch, ctx.data.in_channels, ctx.data.num_classes).eval()
    out = Path(cfg.out) if cfg.out else run_dir() / "export"
    result, _, _ = export_checked(model, arch, ctx.space, ctx.data, ctx.mcu, ctx.host, ctx.runtime,
                                  OmegaConf.to_container(cfg.export, resolve=True), out, cfg.seed)
    print((out / "export.json").resolve(), file=sys.stdout)
    return result
