"""From a chosen arch to firmware: teacher, distillation (with a no-KD baseline beside it), optional structured
pruning and quantization-aware fine-tuning, int8 export and the TFLite Micro check.

Every training stage checkpoints into the run dir after each epoch (``*.train.pt``), so a killed deploy resumes
where it stopped when run again with the same settings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from estimators import MCU, estimate
from search_spaces.base import ArchSpec, SearchSpace
from tinynas.checkpoint import load_checkpoint, save_checkpoint
from tinynas.data import Dataset, Split, at_resolution
from tinynas.distill import DistillLoss, distill, kd_loss
from tinynas.errors import ConfigError
from tinynas.train import TrainConfig, accuracy, fit, seed_everything

log = logging.getLogger("tinynas.deploy")


def load_teacher_arch(space: SearchSpace, spec: str, student: ArchSpec) -> ArchSpec:
    if spec == "largest":
        return space.largest(student)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"distill.teacher.arch={spec!r}: not 'largest' and no such arch JSON file")
    try:
        return space.decode(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:  # JSON, UTF-8 and arch-spec errors alike
        raise ConfigError(f"distill.teacher.arch={spec}: not an arch spec of search space {space.name!r} ({e})") from None


def splits_at(data: Dataset, size: tuple[int, int]) -> tuple[Split, Split, Split]:
    """(train, val, test) at the model's input ``size`` (``space.input_size(arch)``)."""
    return tuple(at_resolution(s, size) for s in (data.train, data.val, data.test))


def distill_train_cfg(train_cfg: TrainConfig, distill_cfg: dict[str, Any], epochs: int,
                      lr: float | None = None) -> TrainConfig:
    """The search's training settings with the distillation stage's epochs, training-set size (and learning rate)."""
    return dataclasses.replace(train_cfg, epochs=epochs, max_train_samples=distill_cfg.get("max_train_samples"),
                               lr=train_cfg.lr if lr is None else float(lr))


def model_fingerprint(model: nn.Module) -> str:
    """A short hash of ``model``'s weights and buffers: equal for the same model, different for another."""
    import hashlib

    h = hashlib.sha1()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _ckpt(workdir: Path | None, name: str) -> Path | None:
    return None if workdir is None else Path(workdir) / f"{name}.train.pt"


def train_teacher(space: SearchSpace, student: ArchSpec, data: Dataset, train_cfg: TrainConfig,
                  distill_cfg: dict[str, Any], device, seed: int = 0, workdir: Path | None = None) -> nn.Module:
    """The teacher: ``distill.teacher.checkpoint`` when set (any arch of the space, trained elsewhere), else
    ``distill.teacher.arch`` trained here for ``distill.teacher.epochs`` (resumable in ``workdir``)."""
    tcfg = distill_cfg["teacher"]
    if tcfg.get("checkpoint"):
        teacher, arch = load_checkpoint(tcfg["checkpoint"], space, None, data.in_channels, data.num_classes)
        log.info("teacher from %s (%s)", tcfg["checkpoint"], arch.hash)
        return teacher.to(device)
    teacher_arch = load_teacher_arch(space, tcfg["arch"], student)
    epochs = int(tcfg["epochs"])
    log.info("training teacher %s (%d epochs)", teacher_arch.hash, epochs)
    seed_everything(seed)
    teacher = space.build_torch(teacher_arch, data.in_channels, data.num_classes)
    train, _, _ = splits_at(data, space.input_size(student))
    fit(teacher, train, distill_train_cfg(train_cfg, distill_cfg, epochs), device, seed=seed,
        checkpoint=_ckpt(workdir, "teacher"), stage="teacher")
    return teacher


def _student(space: SearchSpace, arch: ArchSpec, data: Dataset, seed: int) -> nn.Module:
    seed_everything(seed + 1)  # the same initial weights with and without KD
    return space.build_torch(arch, data.in_channels, data.num_classes)


def distill_student(space: SearchSpace, arch: ArchSpec, teacher: nn.Module, data: Dataset, train_cfg: TrainConfig,
                    distill_cfg: dict[str, Any], device, seed: int = 0, workdir: Path | None = None) -> nn.Module:
    epochs = int(distill_cfg["student_epochs"])
    fw = float(distill_cfg.get("feature_weight", 0.0))
    log.info("distilling %s (%d epochs, T=%s, alpha=%s, feature weight %s)", arch.hash, epochs,
             distill_cfg["temperature"], distill_cfg["alpha"], fw)
    train, val, _ = splits_at(data, space.input_size(arch))
    student = _student(space, arch, data, seed)
    distill(student, teacher, train, val, distill_train_cfg(train_cfg, distill_cfg, epochs),
            float(distill_cfg["temperature"]), float(distill_cfg["alpha"]), device, seed=seed, feature_weight=fw,
            checkpoint=_ckpt(workdir, "student"))
    return student


def train_without_kd(space: SearchSpace, arch: ArchSpec, data: Dataset, train_cfg: TrainConfig,
                     distill_cfg: dict[str, Any], device, seed: int = 0, workdir: Path | None = None) -> nn.Module:
    """The student's arch, initial weights and epochs trained on the hard labels alone: the no-KD baseline."""
    log.info("training %s without a teacher (baseline)", arch.hash)
    model = _student(space, arch, data, seed)
    fit(model, splits_at(data, space.input_size(arch))[0],
        distill_train_cfg(train_cfg, distill_cfg, int(distill_cfg["student_epochs"])), device, seed=seed,
        checkpoint=_ckpt(workdir, "student_no_kd"), stage="baseline (student without KD)")
    return model


def kd_loss_for(student: nn.Module, teacher: nn.Module, distill_cfg: dict[str, Any], cfg: TrainConfig,
                device) -> DistillLoss:
    """The logit-only distillation loss used to fine-tune (pruned or QAT) students, both models on ``device``."""
    student.to(device)
    return kd_loss(teacher.to(device), float(distill_cfg["temperature"]), float(distill_cfg["alpha"]),
                   cfg.label_smoothing)


def prune_student(student: nn.Module, arch: ArchSpec, space: SearchSpace, teacher: nn.Module, data: Dataset,
                  mcu: MCU, runtime: str, train_cfg: TrainConfig, distill_cfg: dict[str, Any], device, seed: int = 0,
                  workdir: Path | None = None):
    """Shrink the distilled ``student`` to ``distill.prune.target`` and fine-tune it with KD. Returns the
    :class:`tinynas.prune.PruneResult` whose ``model`` is the fine-tuned pruned student."""
    from tinynas.prune import PruneSpec, prune

    pcfg = distill_cfg["prune"]
    res = prune(student.cpu(), space, arch, data.in_channels, data.num_classes, mcu, runtime,
                PruneSpec.from_cfg(pcfg))
    log.info("pruned %s → %s: flash %d → %d B, SRAM %d → %d B, latency %.1f → %.1f ms", arch.hash, res.arch.hash,
             res.before["flash_bytes"], res.after["flash_bytes"], res.before["sram_bytes"], res.after["sram_bytes"],
             res.before["latency_ms"], res.after["latency_ms"])
    train = splits_at(data, space.input_size(arch))[0]
    cfg = distill_train_cfg(train_cfg, distill_cfg, int(pcfg.get("epochs", 2)), pcfg.get("lr"))
    loss = kd_loss_for(res.model, teacher, distill_cfg, cfg, device)
    fit(res.model, train, cfg, device, seed=seed, loss_fn=loss, checkpoint=_ckpt(workdir, "pruned"),
        stage="pruning fine-tune")
    return res


def qat_student(student: nn.Module, size: tuple[int, int], teacher: nn.Module | None, data: Dataset,
                train_cfg: TrainConfig, distill_cfg: dict[str, Any], device, seed: int = 0,
                workdir: Path | None = None) -> nn.Module:
    """Quantization-aware fine-tuning (``distill.qat``) of ``student`` in place, with KD when a teacher is given."""
    from tinynas.qat import qat_finetune

    qcfg = distill_cfg["qat"]
    train = splits_at(data, size)[0]
    cfg = distill_train_cfg(train_cfg, distill_cfg, int(qcfg.get("epochs", 1)), qcfg.get("lr"))
    log.info("quantization-aware fine-tuning (%d epochs, lr %g)", cfg.epochs, cfg.lr)
    loss = kd_loss_for(student, teacher, distill_cfg, cfg, device) if teacher is not None else None
    return qat_finetune(student, train, cfg, device, seed=seed, loss_fn=loss, checkpoint=_ckpt(workdir, "qat"))


def export_checked(model: nn.Module, arch: ArchSpec, space: SearchSpace, data: Dataset, mcu: MCU, host: MCU,
                   runtime: str, export_cfg: dict[str, Any], out_dir: Path, seed: int = 0):
    """Export ``model`` to int8 TFLite + firmware files, verified in TFLM, with the estimators' predictions beside
    the measured figures. Returns (ExportResult, Estimate on the host's TFLM, Estimate on the target)."""
    from tinynas.export import export_model
    from tinynas.export.firmware import Preprocessing

    train, _, test = splits_at(data, space.input_size(arch))
    graph = space.to_ir(arch, data.in_channels, data.num_classes)
    target, on_host = estimate(graph, mcu, runtime), estimate(graph, host, "tflm-reference")
    n_cal = int(export_cfg.get("calibration_samples", 200))
    calib = train.x[np.random.default_rng(seed).permutation(len(train.x))[:n_cal]]
    log.info("exporting to int8 TFLite and checking it in the TFLite Micro interpreter")
    result = export_model(model.cpu().eval(), calib, out_dir, test=(test.x, test.y),
                          arena_margin=float(export_cfg.get("arena_margin", 0.1)),
                          preprocessing=Preprocessing.of(data),
                          board_arena=(mcu.name, target.sram.total_bytes) if runtime == "tflm" else None,
                          estimates={"mcu": host.name, "runtime": "tflm-reference",
                                     "sram_bytes": on_host.sram.total_bytes,
                                     "activation_bytes": on_host.sram.activation_bytes,
                                     "persistent_bytes": on_host.sram.persistent_bytes,
                                     "flash_bytes": on_host.flash.model_bytes,
                                     "target": {k: v for k, v in target.to_dict().items() if k != "layers"}})
    return result, on_host, target


def run_target(tflite_path: Path, mcu: MCU, tflm_cfg: dict[str, Any] | None, run_dir: Path) -> dict | None:
    """The firmware report (:mod:`tinynas.target`) of the exported model on ``mcu``'s core, paths relative to
    ``run_dir`` and the ELF copied beside the .tflite; None (one log line says how to turn it on) with no TFLM
    tree configured; {"error": ...} when the tree, the tools or the core are not usable."""
    import shutil

    from tinynas.target.sources import TargetUnavailable, configured_root, resolve

    tflm_cfg = tflm_cfg or {}
    if not configured_root(tflm_cfg.get("root")):
        log.info("firmware: no TFLite Micro tree configured; pass tflm.root=DIR (or set TINYNAS_TFLM_ROOT) to "
                 "build the firmware and run it in QEMU")
        return None
    from tinynas.target.firmware import run_firmware

    try:
        report = run_firmware(tflite_path, mcu, resolve(tflm_cfg.get("root"), tflm_cfg.get("downloads")))
    except (TargetUnavailable, RuntimeError) as e:  # RuntimeError: a failed build or emulation
        log.warning("firmware: %s", e)
        return {"error": str(e)}
    elf = Path(tflite_path).parent / "firmware.elf"
    shutil.copyfile(report["elf"], elf)
    base = Path(run_dir).resolve()
    report["elf"] = str(elf.resolve().relative_to(base))
    report["model"] = str(Path(tflite_path).resolve().relative_to(base))
    if report["sources"]["export"]:  # the export's main.cc and model_data.cc/.h, in the run dir
        report["sources"].update({k: str(Path(v).resolve().relative_to(base)) for k, v in report["sources"].items()
                                  if k != "export"})
    from tinynas.report import firmware_verdict

    log.info("firmware: %s", firmware_verdict(report))
    return report


@dataclasses.dataclass(frozen=True)
class Deployment:
    arch: ArchSpec  # the exported arch (the pruned one when pruning is on)
    teacher_accuracy: float
    fp32_accuracy: float  # the exported float model (after pruning and QAT when on)
    export: Any  # tinynas.export.ExportResult
    host_estimate: Any    # estimators.Estimate for the host interpreter (tflm-reference): compare with the export
    target_estimate: Any  # estimators.Estimate for the target MCU and runtime
    checkpoint: Path
    student_no_kd_accuracy: float | None = None  # the same arch and epochs without a teacher
    student_kd_accuracy: float | None = None     # the distilled student before pruning / QAT
    pruning: dict | None = None  # {"arch", "before": {...figures, accuracy}, "after": {...}}
    qat: bool = False
    # model_fingerprint of each model an accuracy was measured on (teacher, student_no_kd, student_kd, exported):
    # the exported model is the KD student unless pruning or QAT changed it.
    fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)
    test_samples: int = 0  # the test split every accuracy above is measured on


def deploy(arch: ArchSpec, space: SearchSpace, data: Dataset, mcu: MCU, host: MCU, runtime: str,
           train_cfg: TrainConfig, distill_cfg: dict[str, Any], export_cfg: dict[str, Any], out_dir: Path,
           device, seed: int = 0) -> Deployment:
    """Train a teacher, distil ``arch`` from it (and train it without KD for comparison), optionally prune and
    QAT-fine-tune it, export to int8 TFLite and check it in TFLM. Resumable: training state lives in ``out_dir``."""
    out_dir = Path(out_dir)
    teacher = train_teacher(space, arch, data, train_cfg, distill_cfg, device, seed, workdir=out_dir)
    student = distill_student(space, arch, teacher, data, train_cfg, distill_cfg, device, seed, workdir=out_dir)
    _, _, test = splits_at(data, space.input_size(arch))
    teacher_acc = accuracy(teacher, test, device)
    kd_acc = accuracy(student, test, device)
    fingerprints = {"teacher": model_fingerprint(teacher), "student_kd": model_fingerprint(student)}
    no_kd_acc = None
    if distill_cfg.get("baseline_without_kd", True):
        baseline = train_without_kd(space, arch, data, train_cfg, distill_cfg, device, seed, out_dir)
        no_kd_acc = accuracy(baseline, test, device)
        fingerprints["student_no_kd"] = model_fingerprint(baseline)
    model, final_arch, pruning = student, arch, None
    if (distill_cfg.get("prune") or {}).get("enabled"):
        res = prune_student(student, arch, space, teacher, data, mcu, runtime, train_cfg, distill_cfg, device, seed,
                            out_dir)
        model, final_arch = res.model, res.arch
        pruning = {"arch": res.arch.to_dict(), "before": {**res.before, "accuracy": kd_acc},
                   "after": {**res.after, "accuracy": accuracy(model, test, device)}}
    qat = bool((distill_cfg.get("qat") or {}).get("enabled"))
    if qat:
        qat_student(model, space.input_size(arch), teacher, data, train_cfg, distill_cfg, device, seed, out_dir)
    fp32_acc = accuracy(model, test, device)
    fingerprints["exported"] = model_fingerprint(model)
    ckpt = save_checkpoint(out_dir / "student.pt", model, final_arch, data.in_channels, data.num_classes,
                           {"teacher_test_accuracy": teacher_acc, "test_accuracy": fp32_acc})
    result, on_host, target = export_checked(model, final_arch, space, data, mcu, host, runtime, export_cfg,
                                             out_dir / "export", seed)
    return Deployment(final_arch, teacher_acc, fp32_acc, result, on_host, target, ckpt, no_kd_acc, kd_acc, pruning,
                      qat, fingerprints, len(test.y))


def comparison_table(teacher: float, no_kd: float | None, kd: float, pruning: dict | None = None,
                     qat_fp32: float | None = None) -> str:
    """Markdown: teacher, student without and with KD side by side; pruning's accuracy against size."""
    rows = [("teacher", teacher), ("student without KD", no_kd), ("student with KD", kd)]
    lines = ["| model | test accuracy |", "|---|---:|"]
    lines += [f"| {name} | {acc:.3f} |" for name, acc in rows if acc is not None]
    if qat_fp32 is not None:
        lines.append(f"| student after QAT (fp32) | {qat_fp32:.3f} |")
    if pruning:
        lines += ["", "| pruning | test accuracy | flash kB | SRAM kB | latency ms | params | MMACs |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name in ("before", "after"):
            p = pruning[name]
            lines.append(f"| {name} | {p['accuracy']:.3f} | {p['flash_bytes'] / 1024:.1f} | "
                         f"{p['sram_bytes'] / 1024:.1f} | {p['latency_ms']:.1f} | {p['params']:,} | "
                         f"{p['macs'] / 1e6:.2f} |")
    return "\n".join(lines) + "\n"
