"""Knowledge distillation: Hinton et al. (2015) soft targets at temperature T scaled by T², weighted with the
hard-label loss, plus optional feature distillation (FitNets-style MSE between stage outputs through 1×1 adapters)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tinynas.data import Split
from tinynas.train import TrainConfig, accuracy, fit


def block_sequence(model: nn.Module) -> list[nn.Module]:
    """The model's chain of blocks: ``blocks`` (MobileNetV2/V3-style nets) or ``features`` (depthwise-separable nets)."""
    for name in ("blocks", "features"):
        seq = getattr(model, name, None)
        if isinstance(seq, nn.Sequential):
            return list(seq)
    raise ValueError(f"{type(model).__name__} has no `blocks` or `features` sequence to take stage outputs from")


def _stride(module: nn.Module) -> int:
    return max((max(m.stride) for m in module.modules() if isinstance(m, nn.Conv2d)), default=1)


def stage_outputs(model: nn.Module) -> list[nn.Module]:
    """The blocks that end a stage: each one followed by a strided block, and the last block."""
    seq = block_sequence(model)
    return [b for b, nxt in zip(seq, seq[1:] + [None]) if nxt is None or _stride(nxt) > 1]


class _Recorder:
    """Forward hooks keeping the latest output of each module."""

    def __init__(self, modules: list[nn.Module]):
        self.outputs: list[torch.Tensor | None] = [None] * len(modules)
        self.handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(modules)]

    def _hook(self, i: int):
        def hook(module, inputs, output):
            self.outputs[i] = output

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.outputs = [None] * len(self.outputs)


class DistillLoss(nn.Module):
    """``(student_logits, labels, inputs) -> loss`` for :func:`tinynas.train.fit`:
    ``alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE(labels) + feature_weight · mean MSE(stages)``.

    With ``feature_weight > 0`` each student stage output (matched to the teacher's last stage output of the same
    spatial size) goes through a trainable 1×1 conv adapter to the teacher's channels; the adapters are this
    module's parameters, so ``fit`` trains them with the student. Call :meth:`close` to remove the hooks.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, temperature: float, alpha: float,
                 label_smoothing: float = 0.0, feature_weight: float = 0.0,
                 sample_input: torch.Tensor | None = None):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"distill.alpha={alpha} must be in [0, 1]")
        if temperature <= 0:
            raise ValueError(f"distill.temperature={temperature} must be positive")
        if feature_weight < 0:
            raise ValueError(f"distill.feature_weight={feature_weight} must be ≥ 0")
        self.temperature, self.alpha, self.label_smoothing = temperature, alpha, label_smoothing
        self.feature_weight = feature_weight
        self._teacher = [teacher]  # in a list: not a submodule, so its weights stay out of the optimizer
        self.adapters = nn.ModuleList()
        self.pairs: list[tuple[int, int]] = []
        self._student = self._teacher_rec = None
        if feature_weight > 0:
            if sample_input is None:
                raise ValueError("feature distillation needs a sample input to match stage shapes")
            self._student = _Recorder(stage_outputs(student))
            self._teacher_rec = _Recorder(stage_outputs(teacher))
            self._match(student, teacher, sample_input)

    @torch.no_grad()
    def _match(self, student: nn.Module, teacher: nn.Module, x: torch.Tensor) -> None:
        modes = student.training, teacher.training
        student.eval(), teacher.eval()
        student(x), teacher(x)
        student.train(modes[0]), teacher.train(modes[1])
        t_shapes = [tuple(t.shape[1:]) for t in self._teacher_rec.outputs]
        for i, s in enumerate(self._student.outputs):
            same = [j for j, (_, h, w) in enumerate(t_shapes) if (h, w) == tuple(s.shape[2:])]
            if same:
                self.pairs.append((i, same[-1]))
                self.adapters.append(nn.Conv2d(s.shape[1], t_shapes[same[-1]][0], 1, bias=False))
        if not self.pairs:
            raise ValueError("feature distillation: no student stage output has the spatial size of a teacher one")

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t_logits = self._teacher[0](inputs)
        t = self.temperature
        soft = F.softmax(t_logits / t, dim=1)
        kd = F.kl_div(F.log_softmax(logits / t, dim=1), soft, reduction="batchmean") * t ** 2
        hard = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        loss = self.alpha * kd + (1 - self.alpha) * hard
        if self.pairs:
            feats = [F.mse_loss(adapter(self._student.outputs[i]), self._teacher_rec.outputs[j].detach())
                     for adapter, (i, j) in zip(self.adapters, self.pairs)]
            loss = loss + self.feature_weight * torch.stack(feats).mean()
        return loss

    def close(self) -> None:
        for rec in (self._student, self._teacher_rec):
            if rec is not None:
                rec.remove()


def kd_loss(teacher: nn.Module, temperature: float, alpha: float, label_smoothing: float = 0.0) -> DistillLoss:
    """Logit-only distillation loss (no feature term)."""
    return DistillLoss(nn.Identity(), teacher, temperature, alpha, label_smoothing)


@dataclasses.dataclass(frozen=True)
class DistillResult:
    teacher_accuracy: float
    student_accuracy: float


def distill(student: nn.Module, teacher: nn.Module, train: Split, val: Split, cfg: TrainConfig,
            temperature: float, alpha: float, device: torch.device, seed: int = 0, feature_weight: float = 0.0,
            checkpoint: Path | None = None) -> DistillResult:
    """Train ``student`` in place against an already trained ``teacher``; accuracies on ``val``.
    ``checkpoint``: resumable training state (see :func:`tinynas.train.fit`)."""
    student.to(device)
    loss = DistillLoss(student, teacher.to(device), temperature, alpha, cfg.label_smoothing, feature_weight,
                       torch.from_numpy(train.x[:2]).to(device))
    try:
        fit(student, train, cfg, device, seed=seed, teacher=teacher, loss_fn=loss, checkpoint=checkpoint,
            stage="student (KD)")
    finally:
        loss.close()
    return DistillResult(accuracy(teacher, val, device), accuracy(student, val, device))
