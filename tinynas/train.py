"""Training and evaluation of candidate networks (SGD + cosine schedule, optional distillation teacher)."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinynas.data import Split
from tinynas.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when a GPU is present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"device={name!r} is not allowed; use auto, cpu or cuda[:N]")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but no CUDA GPU is visible; use device=auto or device=cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed torch and numpy: call before building a model so its initial weights depend on the seed alone
    (torch seeds itself differently in every new process)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd (Nesterov momentum) | adamw
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    max_train_samples: int | None = None
    augment: bool = False

    @classmethod
    def from_cfg(cls, cfg) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise ConfigError(f"train: unknown options {unknown}; allowed: {sorted(names)}")
        tc = cls(**dict(cfg))
        if tc.optimizer not in ("sgd", "adamw"):
            raise ConfigError(f"train.optimizer={tc.optimizer!r} is unknown; allowed: sgd, adamw")
        if tc.epochs < 0 or tc.batch_size < 1 or tc.lr <= 0:
            raise ConfigError(f"train: epochs={tc.epochs}, batch_size={tc.batch_size}, lr={tc.lr} must be ≥0, ≥1, >0")
        return tc


def random_shift(x: torch.Tensor, max_shift: int = 2) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (zero padding): cheap augmentation for small images."""
    padded = F.pad(x, (max_shift,) * 4)
    h, w = x.shape[-2:]
    dy, dx = np.random.randint(0, 2 * max_shift + 1, size=2)
    return padded[..., dy:dy + h, dx:dx + w]


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def fit(model: nn.Module, train: Split, cfg: TrainConfig, device: torch.device, seed: int = 0,
        loss_fn: LossFn | None = None, teacher: nn.Module | None = None,
        on_epoch_end: Callable[[int, float], bool | None] | None = None) -> list[float]:
    """Train ``model`` in place; returns the mean loss of each epoch.

    ``loss_fn(student_logits, labels, inputs)`` replaces cross-entropy (distillation uses it with ``teacher``).
    ``on_epoch_end(epoch, mean_loss)`` runs after each epoch (0-based) with the model in train mode; returning
    False stops training there (early stopping, successive halving). Batch norm is recalibrated either way.
    Raises FloatingPointError when the loss becomes NaN or infinite.
    """
    g = torch.Generator().manual_seed(seed)
    seed_everything(seed)
    x, y = torch.from_numpy(train.x), torch.from_numpy(train.y)
    if cfg.max_train_samples is not None and cfg.max_train_samples < len(y):
        keep = torch.randperm(len(y), generator=g)[: cfg.max_train_samples]
        x, y = x[keep], y[keep]
    model.to(device).train()
    if teacher is not None:
        teacher.to(device).eval()
    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                              nesterov=True)
    steps_per_epoch = max(1, math.ceil(len(y) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, cfg.epochs * steps_per_epoch),
                                                pct_start=0.15)
    ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    history = []
    for _ in range(cfg.epochs):
        order = torch.randperm(len(y), generator=g)
        total, count = 0.0, 0
        for i in range(0, len(y), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            xb, yb = x[idx].to(device), y[idx].to(device)
            if cfg.augment:
                xb = random_shift(xb)
            logits = model(xb)
            loss = loss_fn(logits, yb, xb) if loss_fn is not None else ce(logits, yb)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training diverged: loss is {loss.item()} (try a lower train.lr)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            count += len(idx)
        history.append(total / max(count, 1))
        if on_epoch_end is not None and on_epoch_end(len(history) - 1, history[-1]) is False:
            break
    recalibrate_bn(model, x, device, cfg.batch_size)
    return history


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 128,
                   max_samples: int = 1000) -> None:
    """Re-estimate batch-norm running statistics as exact averages over training data (as OFA does before
    scoring): after a short proxy training the momentum estimates lag far behind the weights."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        model.eval()
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average
    model.train()
    for i in range(0, min(len(x), max_samples), batch_size):
        if len(x[i:i + batch_size]) > 1:
            model(x[i:i + batch_size].to(device))
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, device: torch.device, batch_size: int = 512) -> np.ndarray:
    """Logits of ``model`` on ``x`` (eval mode)."""
    model.to(device).eval()
    out = [model(torch.from_numpy(x[i:i + batch_size]).to(device)).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()


def accuracy(model: nn.Module, split: Split, device: torch.device) -> float:
    return float((predict(model, split.x, device).argmax(1) == split.y).mean())
