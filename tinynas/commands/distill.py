"""`tinynas distill arch=FILE.json [run_id=NAME]`: train a teacher, distil the arch from it (beside the same arch
trained without KD), optionally prune and QAT-fine-tune it, save the student. Rerun with the same run_id to resume."""

from __future__ import annotations

import json
import logging
import sys

from omegaconf import OmegaConf

from tinynas.checkpoint import save_checkpoint
from tinynas.commands.common import load_arch, load_common, run_dir
from tinynas.deploy import (comparison_table, distill_student, prune_student, qat_student, splits_at, train_teacher,
                            train_without_kd)
from tinynas.train import TrainConfig, accuracy

log = logging.getLogger("tinynas.distill")


def run(cfg):
    ctx = load_common(cfg)
    arch = load_arch(cfg, ctx.space)
    tc = TrainConfig.from_cfg(cfg.train)
    dcfg = OmegaConf.to_container(cfg.distill, resolve=True)
    if (dcfg.get("prune") or {}).get("enabled"):
        from tinynas.prune import PruneSpec

        PruneSpec.from_cfg(dcfg["prune"])  # refuse a bad target before any training
    out = run_dir()
    _, _, test = splits_at(ctx.data, ctx.space.input_size(arch))
    teacher = train_teacher(ctx.space, arch, ctx.data, tc, dcfg, ctx.device, cfg.seed, workdir=out)
    student = distill_student(ctx.space, arch, teacher, ctx.data, tc, dcfg, ctx.device, cfg.seed, workdir=out)
    metrics = {"teacher_test_accuracy": accuracy(teacher, test, ctx.device),
               "student_without_kd_test_accuracy": None,
               "student_with_kd_test_accuracy": accuracy(student, test, ctx.device)}
    if dcfg.get("baseline_without_kd", True):
        baseline = train_without_kd(ctx.space, arch, ctx.data, tc, dcfg, ctx.device, cfg.seed, workdir=out)
        metrics["student_without_kd_test_accuracy"] = accuracy(baseline, test, ctx.device)
    final, final_arch = student, arch
    if dcfg["prune"]["enabled"]:
        res = prune_student(student, arch, ctx.space, teacher, ctx.data, ctx.mcu, ctx.runtime, tc, dcfg, ctx.device,
                            cfg.seed, workdir=out)
        final, final_arch = res.model, res.arch
        metrics["pruning"] = {"arch": res.arch.to_dict(),
                              "before": {**res.before, "accuracy": metrics["student_with_kd_test_accuracy"]},
                              "after": {**res.after, "accuracy": accuracy(final, test, ctx.device)}}
        (out / "pruned_arch.json").write_text(json.dumps(res.arch.to_dict(), indent=1) + "\n")
    if dcfg["qat"]["enabled"]:
        qat_student(final, ctx.space.input_size(arch), teacher, ctx.data, tc, dcfg, ctx.device, cfg.seed, workdir=out)
        metrics["qat_fp32_test_accuracy"] = accuracy(final, test, ctx.device)
    metrics["test_accuracy"] = accuracy(final, test, ctx.device)
    path = save_checkpoint(out / "student.pt", final, final_arch, ctx.data.in_channels, ctx.data.num_classes, metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    log.info("test accuracy side by side:\n%s", comparison_table(
        metrics["teacher_test_accuracy"], metrics["student_without_kd_test_accuracy"],
        metrics["student_with_kd_test_accuracy"], metrics.get("pruning"), metrics.get("qat_fp32_test_accuracy")))
    print(path.resolve(), file=sys.stdout)
    return path
