"""From a chosen arch to firmware: teacher, distillation, int8 export and the TFLite Micro check."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from estimators import MCU, estimate
from search_spaces.base import ArchSpec, SearchSpace
from tinynas.checkpoint import save_checkpoint
from tinynas.data import Dataset, Split, at_resolution
from tinynas.distill import distill
from tinynas.errors import ConfigError
from tinynas.train import TrainConfig, accuracy, fit, seed_everything

log = logging.getLogger("tinynas.deploy")


def load_teacher_arch(space: SearchSpace, spec: str, student: ArchSpec) -> ArchSpec:
    if spec == "largest":
        return space.largest(student)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"distill.teacher.arch={spec!r}: not 'largest' and no such arch JSON file")
    return space.decode(json.loads(path.read_text()))


def splits_at(data: Dataset, resolution: int) -> tuple[Split, Split, Split]:
    return tuple(at_resolution(s, resolution) for s in (data.train, data.val, data.test))


def distill_train_cfg(train_cfg: TrainConfig, distill_cfg: dict[str, Any], epochs: int) -> TrainConfig:
    """The search's training settings with the distillation stage's epochs and training-set size."""
    return dataclasses.replace(train_cfg, epochs=epochs, max_train_samples=distill_cfg.get("max_train_samples"))


def train_teacher(space: SearchSpace, student: ArchSpec, data: Dataset, train_cfg: TrainConfig,
                  distill_cfg: dict[str, Any], device, seed: int = 0) -> nn.Module:
    teacher_arch = load_teacher_arch(space, distill_cfg["teacher"]["arch"], student)
    epochs = int(distill_cfg["teacher"]["epochs"])
    log.info("training teacher %s (%d epochs)", teacher_arch.hash, epochs)
    seed_everything(seed)
    teacher = space.build_torch(teacher_arch, data.in_channels, data.num_classes)
    train, _, _ = splits_at(data, student.resolution)
    fit(teacher, train, distill_train_cfg(train_cfg, distill_cfg, epochs), device, seed=seed)
    return teacher


def distill_student(space: SearchSpace, arch: ArchSpec, teacher: nn.Module, data: Dataset, train_cfg: TrainConfig,
                    distill_cfg: dict[str, Any], device, seed: int = 0) -> nn.Module:
    epochs = int(distill_cfg["student_epochs"])
    log.info("distilling %s (%d epochs, T=%s, alpha=%s)", arch.hash, epochs, distill_cfg["temperature"],
             distill_cfg["alpha"])
    train, val, _ = splits_at(data, arch.resolution)
    seed_everything(seed + 1)
    student = space.build_torch(arch, data.in_channels, data.num_classes)
    distill(student, teacher, train, val, distill_train_cfg(train_cfg, distill_cfg, epochs),
            float(distill_cfg["temperature"]), float(distill_cfg["alpha"]), device, seed=seed)
    return student


def export_checked(model: nn.Module, arch: ArchSpec, space: SearchSpace, data: Dataset, mcu: MCU, host: MCU,
                   runtime: str, export_cfg: dict[str, Any], out_dir: Path, seed: int = 0):
    """Export ``model`` to int8 TFLite + firmware files, verified in TFLM, with the estimators' predictions beside
    the measured figures. Returns (ExportResult, Estimate on the host's TFLM, Estimate on the target)."""
    from tinynas.export import export_model

    train, _, test = splits_at(data, arch.resolution)
    graph = space.to_ir(arch, data.in_channels, data.num_classes)
    target, on_host = estimate(graph, mcu, runtime), estimate(graph, host, "tflm-reference")
    n_cal = int(export_cfg.get("calibration_samples", 200))
    calib = train.x[np.random.default_rng(seed).permutation(len(train.x))[:n_cal]]
    log.info("exporting to int8 TFLite and checking it in the TFLite Micro interpreter")
    result = export_model(model.cpu().eval(), calib, out_dir, test=(test.x, test.y),
                          arena_margin=float(export_cfg.get("arena_margin", 0.1)),
                          estimates={"mcu": host.name, "runtime": "tflm-reference",
                                     "sram_bytes": on_host.sram.total_bytes,
                                     "activation_bytes": on_host.sram.activation_bytes,
                                     "persistent_bytes": on_host.sram.persistent_bytes,
                                     "flash_bytes": on_host.flash.model_bytes,
                                     "target": {k: v for k, v in target.to_dict().items() if k != "layers"}})
    return result, on_host, target


@dataclasses.dataclass(frozen=True)
class Deployment:
    arch: ArchSpec
    teacher_accuracy: float
    fp32_accuracy: float
    export: Any  # tinynas.export.ExportResult
    host_estimate: Any    # estimators.Estimate for the host interpreter (tflm-reference): compare with the export
    target_estimate: Any  # estimators.Estimate for the target MCU and runtime
    checkpoint: Path


def deploy(arch: ArchSpec, space: SearchSpace, data: Dataset, mcu: MCU, host: MCU, runtime: str,
           train_cfg: TrainConfig, distill_cfg: dict[str, Any], export_cfg: dict[str, Any], out_dir: Path,
           device, seed: int = 0) -> Deployment:
    """Train a teacher, distil ``arch`` from it, export to int8 TFLite and check it in TFLM."""
    teacher = train_teacher(space, arch, data, train_cfg, distill_cfg, device, seed)
    student = distill_student(space, arch, teacher, data, train_cfg, distill_cfg, device, seed)
    _, _, test = splits_at(data, arch.resolution)
    teacher_acc, fp32_acc = accuracy(teacher, test, device), accuracy(student, test, device)
    ckpt = save_checkpoint(out_dir / "student.pt", student, arch, data.in_channels, data.num_classes,
                           {"teacher_test_accuracy": teacher_acc, "test_accuracy": fp32_acc})
    result, on_host, target = export_checked(student, arch, space, data, mcu, host, runtime, export_cfg,
                                             out_dir / "export", seed)
    return Deployment(arch, teacher_acc, fp32_acc, result, on_host, target, ckpt)
