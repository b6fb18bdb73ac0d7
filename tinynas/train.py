"""Training and evaluation of candidate networks: SGD/AdamW, a one-cycle / cosine / constant schedule with
warmup, optional distillation loss, and resumable per-epoch checkpoints."""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from tinynas.augment import make_augment
from tinynas.data import Split
from tinynas.errors import ConfigError, check_options
from tinynas.progress import EpochProgress

log = logging.getLogger("tinynas.train")
SCHEDULES = ("onecycle", "cosine", "constant")
FLOAT_FIELDS = ("lr", "momentum", "weight_decay", "label_smoothing", "warmup_epochs")


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
    augment: Any = False  # a tinynas.augment spec: false | true (= "shift") | name | {name: ..} | list
    schedule: str = "onecycle"  # onecycle | cosine | constant
    warmup_epochs: float = 0.0  # linear warmup; for onecycle the rising phase (0: its default 15%)

    @classmethod
    def from_cfg(cls, cfg) -> "TrainConfig":
        check_options(cls, cfg, "train")
        from omegaconf import OmegaConf

        tc = cls(**{k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in dict(cfg).items()})
        # numbers as floats, so `lr: 1` and `lr: 1.0` are the same settings (resumable checkpoints compare them)
        tc = dataclasses.replace(tc, **{k: float(getattr(tc, k)) for k in FLOAT_FIELDS
                                        if isinstance(getattr(tc, k), (int, float))})
        if tc.optimizer not in ("sgd", "adamw"):
            raise ConfigError(f"train.optimizer={tc.optimizer!r} is unknown; allowed: sgd, adamw")
        if tc.schedule not in SCHEDULES:
            raise ConfigError(f"train.schedule={tc.schedule!r} is unknown; allowed: {', '.join(SCHEDULES)}")
        if tc.epochs < 0 or tc.batch_size < 1 or tc.lr <= 0:
            raise ConfigError(f"train: epochs={tc.epochs}, batch_size={tc.batch_size}, lr={tc.lr} must be ≥0, ≥1, >0")
        if not 0 <= tc.warmup_epochs <= max(tc.epochs, 0) or (tc.schedule == "onecycle" and tc.epochs
                                                                and tc.warmup_epochs >= tc.epochs):
            raise ConfigError(f"train.warmup_epochs={tc.warmup_epochs} must be ≥ 0 and below train.epochs={tc.epochs}")
        make_augment(tc.augment)  # refuse a bad spec now, not after the first epoch
        return tc


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """The per-step learning-rate schedule of ``cfg.schedule`` with ``cfg.warmup_epochs`` of linear warmup."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = min(total - 1, round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total,
                                                   pct_start=warm / total if warm > 0 else 0.15)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if cfg.schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def make_optimizer(params, cfg) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum, from ``cfg``'s optimizer, lr, momentum and weight_decay (a
    :class:`TrainConfig`, or the super-network's settings)."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)


def cap_samples(x: torch.Tensor, y: torch.Tensor, limit: int | None, g: torch.Generator):
    """At most ``limit`` samples of (x, y), drawn with ``g``; all of them when ``limit`` is None or not below."""
    if limit is not None and limit < len(y):
        keep = torch.randperm(len(y), generator=g)[:limit]
        return x[keep], y[keep]
    return x, y


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# -- resumable training state -------------------------------------------------------------------------
def _rng_state(g: torch.Generator) -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"generator": g.get_state(), "torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
             "python": _plain_random_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _plain_random_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(g: torch.Generator, state: dict[str, Any]) -> None:
    g.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fingerprint(model: nn.Module, cfg: TrainConfig, seed: int, n_samples: int, extra: nn.Module | None) -> str:
    """What a checkpoint must have been written for to be resumed: settings, seed, data size, parameter shapes."""
    shapes = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    if extra is not None:
        shapes += [(f"loss.{k}", tuple(v.shape)) for k, v in extra.state_dict().items()]
    return repr((dataclasses.asdict(cfg), seed, n_samples, shapes))


def _save_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically: a crash mid-write leaves the previous checkpoint in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _load_state(path: Path | None, fingerprint: str) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: start over
        log.warning("training checkpoint %s is unreadable (%s: %s); training from scratch", path, type(e).__name__, e)
        return None
    if state.get("fingerprint") != fingerprint:
        log.warning("training checkpoint %s was written for other settings or another model; training from scratch",
                    path)
        return None
    return state


def fit(model: nn.Module, train: Split, cfg: TrainConfig, device: torch.device, seed: int = 0,
        loss_fn: LossFn | None = None, teacher: nn.Module | None = None,
        on_epoch_end: Callable[[int, float], bool | None] | None = None,
        checkpoint: Path | None = None, stage: str = "train") -> list[float]:
    """Train ``model`` in place; returns the mean loss of each epoch.

    ``loss_fn(student_logits, labels, inputs)`` replaces cross-entropy (distillation uses it with ``teacher``);
    when it is an ``nn.Module`` its parameters (e.g. feature-distillation adapters) train with the model.
    ``on_epoch_end(epoch, mean_loss)`` runs after each epoch (0-based) with the model in train mode; returning
    False stops training there (early stopping, successive halving). Batch norm is recalibrated either way.
    ``checkpoint``: after every epoch the model, optimizer, schedule, loss history and every RNG state are
    written there atomically; a later call with the same settings continues after the last finished epoch and
    ends with the weights an uninterrupted run would have (one written for other settings is ignored).
    ``stage`` names the training in its per-epoch progress lines (:class:`tinynas.progress.EpochProgress`).
    Raises FloatingPointError when the loss becomes NaN or infinite.
    """
    g = torch.Generator().manual_seed(seed)
    seed_everything(seed)
    x, y = cap_samples(torch.from_numpy(train.x), torch.from_numpy(train.y), cfg.max_train_samples, g)
    extra = loss_fn if isinstance(loss_fn, nn.Module) else None
    model.to(device).train()
    if extra is not None:
        extra.to(device).train()
    if teacher is not None:
        teacher.to(device).eval()
    params = list(model.parameters()) + (list(extra.parameters()) if extra is not None else [])
    opt = make_optimizer(params, cfg)
    steps_per_epoch = max(1, math.ceil(len(y) / cfg.batch_size))
    sched = make_scheduler(opt, cfg, steps_per_epoch)
    augment = make_augment(cfg.augment)
    ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    fingerprint = _fingerprint(model, cfg, seed, len(y), extra)
    history: list[float] = []
    state = _load_state(checkpoint, fingerprint)
    stopped = False
    if state is not None:
        model.load_state_dict(state["model"])
        if extra is not None:
            extra.load_state_dict(state["loss"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(g, state["rng"])
        history, stopped = list(state["history"]), bool(state["stopped"])
        log.info("resuming training from %s after epoch %d of %d", checkpoint, len(history), cfg.epochs)

    def save(stop: bool) -> None:
        if checkpoint is not None:
            _save_state(checkpoint, {"fingerprint": fingerprint, "history": history, "stopped": stop,
                                     "model": model.state_dict(), "optimizer": opt.state_dict(),
                                     "scheduler": sched.state_dict(), "rng": _rng_state(g),
                                     "loss": extra.state_dict() if extra is not None else {}})

    done = cfg.epochs if stopped else len(history)
    with EpochProgress(stage, cfg.epochs, steps_per_epoch, done=done) as progress:
        while len(history) < cfg.epochs and not stopped:
            order = torch.randperm(len(y), generator=g)
            total, count, correct = 0.0, 0, 0
            for i in range(0, len(y), cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                progress.step()
                if len(idx) < 2:  # batch norm needs two samples
                    continue
                xb, yb = x[idx].to(device), y[idx].to(device)
                if augment is not None:
                    xb = augment(xb)
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
                correct += int((logits.detach().argmax(1) == yb).sum())
            history.append(total / max(count, 1))
            save(False)
            progress.epoch(len(history), history[-1], correct / max(count, 1))
            if on_epoch_end is not None and on_epoch_end(len(history) - 1, history[-1]) is False:
                stopped = True
                save(True)
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
