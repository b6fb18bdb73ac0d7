"""From a chosen arch to firmware: teacher, distillation, int8 export and the TFLite Micro check."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from estimators import MCU, estimate
from search_spaces.base import ArchSpec, SearchSpace
from tinynas.data import Dataset, at_resolution
from tinynas.distill import distill
from tinynas.errors import ConfigError
from tinynas.train import TrainConfig, accuracy, fit

log = logging.getLogger("tinynas.deploy")


def load_teacher_arch(space: SearchSpace, spec: str, student: ArchSpec) -> ArchSpec:
    if spec == "largest":
        return space.largest(student)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"distill.teacher.arch={spec!r}: not 'largest' and no such arch JSON file")
    return space.decode(json.loads(path.read_text()))


@dataclasses.dataclass(frozen=True)
class Deployment:
    arch: ArchSpec
    teacher_accuracy: float
    fp32_accuracy: float
    export: Any  # tinynas.export.ExportResult
    estimated_sram_bytes: int
    estimated_flash_bytes: int


def deploy(arch: ArchSpec, space: SearchSpace, data: Dataset, mcu: MCU, host: MCU, runtime: str,
           train_cfg: TrainConfig, distill_cfg: dict[str, Any], export_cfg: dict[str, Any], out_dir: Path,
           device: torch.device, seed: int = 0) -> Deployment:
    """Train a teacher, distil ``arch`` from it, export to int8 TFLite and check it in TFLM."""
    from tinynas.export import export_model

    res = arch.resolution
    train, val, test = (at_resolution(s, res) for s in (data.train, data.val, data.test))
    teacher_arch = load_teacher_arch(space, distill_cfg["teacher"]["arch"], arch)
    log.info("training teacher %s (%d epochs)", teacher_arch.hash, distill_cfg["teacher"]["epochs"])
    teacher = space.build_torch(teacher_arch, data.in_channels, data.num_classes)
    fit(teacher, train, dataclasses.replace(train_cfg, epochs=int(distill_cfg["teacher"]["epochs"])), device, seed=seed)

    log.info("distilling trial arch %s (%d epochs, T=%s, alpha=%s)", arch.hash, distill_cfg["student_epochs"],
             distill_cfg["temperature"], distill_cfg["alpha"])
    student = space.build_torch(arch, data.in_channels, data.num_classes)
    distill(student, teacher, train, val, dataclasses.replace(train_cfg, epochs=int(distill_cfg["student_epochs"])),
            float(distill_cfg["temperature"]), float(distill_cfg["alpha"]), device, seed=seed)
    teacher_acc, fp32_acc = accuracy(teacher, test, device), accuracy(student, test, device)
    torch.save(student.state_dict(), out_dir / "student.pt")

    graph = space.to_ir(arch, data.in_channels, data.num_classes)
    target, on_host = estimate(graph, mcu, runtime), estimate(graph, host, "tflm-reference")
    n_cal = int(export_cfg.get("calibration_samples", 200))
    calib = train.x[np.random.default_rng(seed).permutation(len(train.x))[:n_cal]]
    log.info("exporting to int8 TFLite and checking it in the TFLite Micro interpreter")
    result = export_model(student.cpu(), calib, out_dir / "export", test=(test.x, test.y),
                          arena_margin=float(export_cfg.get("arena_margin", 0.1)),
                          estimates={"sram_bytes": on_host.sram.total_bytes,
                                     "activation_bytes": on_host.sram.activation_bytes,
                                     "flash_bytes": on_host.flash.model_bytes,
                                     "runtime": "tflm-reference", "mcu": host.name,
                                     "target": target.to_dict() | {"layers": None}})
    return Deployment(arch, teacher_acc, fp32_acc, result, target.sram.total_bytes, target.flash.total_bytes)
