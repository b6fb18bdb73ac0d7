"""`tinynas distill arch=FILE.json`: train a teacher, distil the arch from it, save the student."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys

from omegaconf import OmegaConf

from tinynas.checkpoint import save_checkpoint
from tinynas.commands.common import load_arch, load_common, run_dir
from tinynas.deploy import distill_student, splits_at, train_teacher
from tinynas.train import TrainConfig, accuracy, fit, seed_everything

log = logging.getLogger("tinynas.distill")


def run(cfg):
    ctx = load_common(cfg)
    arch = load_arch(cfg, ctx.space)
    tc = TrainConfig.from_cfg(cfg.train)
    dcfg = OmegaConf.to_container(cfg.distill, resolve=True)
    _, _, test = splits_at(ctx.data, arch.resolution)
    teacher = train_teacher(ctx.space, arch, ctx.data, tc, dcfg, ctx.device, cfg.seed)
    student = distill_student(ctx.space, arch, teacher, ctx.data, tc, dcfg, ctx.device, cfg.seed)
    # The same arch trained without a teacher, for the side-by-side comparison.
    seed_everything(cfg.seed + 1)  # the student's initial weights, as in deploy.distill_student
    baseline = ctx.space.build_torch(arch, ctx.data.in_channels, ctx.data.num_classes)
    fit(baseline, splits_at(ctx.data, arch.resolution)[0], dataclasses.replace(tc, epochs=int(dcfg["student_epochs"])),
        ctx.device, seed=cfg.seed)
    metrics = {"teacher_test_accuracy": accuracy(teacher, test, ctx.device),
               "student_without_kd_test_accuracy": accuracy(baseline, test, ctx.device),
               "student_with_kd_test_accuracy": accuracy(student, test, ctx.device)}
    out = run_dir()
    path = save_checkpoint(out / "student.pt", student, arch, ctx.data.in_channels, ctx.data.num_classes, metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    log.info("teacher %.3f | student without KD %.3f | student with KD %.3f", *metrics.values())
    print(path.resolve(), file=sys.stdout)
    return path
