"""`tinynas export arch=FILE.json|NAME [checkpoint=FILE] out=DIR`: int8 TFLite + firmware files, checked in TFLM.

A named point (``search_spaces.named``) brings its own search space; input channels and classes are the dataset's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from search_spaces.named import find
from tinynas.checkpoint import load_checkpoint
from tinynas.commands.common import load_arch, load_common, run_dir
from tinynas.deploy import export_checked, run_target
from tinynas.report import write_json
from tinynas.train import seed_everything


def run(cfg):
    ctx = load_common(cfg)
    point = find(str(cfg.arch or ""))
    space, arch = (point.space(), point.spec()) if point else (ctx.space, load_arch(cfg, ctx.space))
    if cfg.checkpoint:
        model, _ = load_checkpoint(cfg.checkpoint, space, arch, ctx.data.in_channels, ctx.data.num_classes)
    else:
        seed_everything(cfg.seed)
        model = space.build_torch(arch, ctx.data.in_channels, ctx.data.num_classes).eval()
    out = Path(cfg.out) if cfg.out else run_dir() / "export"
    result, _, _ = export_checked(model, arch, space, ctx.data, ctx.mcu, ctx.host, ctx.runtime,
                                  OmegaConf.to_container(cfg.export, resolve=True), out, cfg.seed)
    target = run_target(Path(result.tflite_path), ctx.mcu, OmegaConf.to_container(cfg.tflm, resolve=True), out)
    if target is not None:
        write_json(out / "firmware.json", target)
    print((out / "export.json").resolve(), file=sys.stdout)
    return result
