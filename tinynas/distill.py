"""Knowledge distillation (Hinton et al., 2015): soft targets at temperature T, scaled by T², plus hard labels."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from tinynas.data import Split
from tinynas.train import TrainConfig, accuracy, fit


def kd_loss(teacher: nn.Module, temperature: float, alpha: float, label_smoothing: float = 0.0):
    """Loss ``(student_logits, labels, inputs) -> loss`` for :func:`tinynas.train.fit`."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distill.alpha={alpha} must be in [0, 1]")
    if temperature <= 0:
        raise ValueError(f"distill.temperature={temperature} must be positive")

    def loss(logits: torch.Tensor, labels: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            soft = F.softmax(teacher(inputs) / temperature, dim=1)
        kd = F.kl_div(F.log_softmax(logits / temperature, dim=1), soft, reduction="batchmean") * temperature ** 2
        hard = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        return alpha * kd + (1 - alpha) * hard

    return loss


@dataclasses.dataclass(frozen=True)
class DistillResult:
    teacher_accuracy: float
    student_accuracy: float


def distill(student: nn.Module, teacher: nn.Module, train: Split, val: Split, cfg: TrainConfig,
            temperature: float, alpha: float, device: torch.device, seed: int = 0) -> DistillResult:
    """Train ``student`` in place against an already trained ``teacher``; accuracies on ``val``."""
    fit(student, train, cfg, device, seed=seed, teacher=teacher,
        loss_fn=kd_loss(teacher, temperature, alpha, cfg.label_smoothing))
    return DistillResult(accuracy(teacher, val, device), accuracy(student, val, device))
