"""Training the MCUNet super-network: largest first, then the sandwich rule with in-place distillation.

Phase 1 (``largest_epochs``): the largest arch alone, at a random resolution of the space per batch.
Phase 2 (``epochs``): per batch the largest arch (at the highest resolution, cross-entropy), the smallest and
``subnets_per_batch`` random archs (each at its own resolution); the losses are summed into one optimiser step
(BigNAS's sandwich rule). With ``progressive`` (Once-for-All's progressive shrinking) phase 2's epochs are split
over four phases that unlock one elastic dimension after another — kernel, then depth, then expand ratio, then
width and resolution (:data:`PROGRESSIVE_PHASES`; the remainder of ``epochs / 4`` goes to the last phases, or
``last_phase_epochs`` go to the last and the earlier three share the rest the same way) — and
the smallest and random archs of a phase vary only in the dimensions unlocked so far, the others at their
maximum (:func:`batch_archs`). Each phase follows its own cosine learning-rate schedule. (Extending a finished
progressive checkpoint with more ``epochs`` re-splits the phases: training continues in whichever phases the new
split puts after the epochs already done.)

Sub-networks learn from the labels *and*, when ``distill``, from the largest arch's detached logits:
cross-entropy + ``kd_ratio`` × soft cross-entropy, as Once-for-All trains them. Distilling from the largest
arch alone (in-place distillation without labels) is fragile while the largest is still near chance: its soft
labels are nearly uniform, the sub-networks learn almost nothing, and whether the smallest ends below 0.8× its
untrained loss was decided by last-bit differences between CPU kernels (AVX-512 vs AVX2).

``losses`` records, per epoch, the mean cross-entropy on the labels per arch run (largest alone in phase 1, every
sandwich arch in phase 2), so the two phases read on one scale; the distillation term is not in it.

With a checkpoint path the super-network is saved after every epoch (:func:`tinynas.checkpoint.save_checkpoint`,
as the largest arch: the super-network's state dict is that arch's) and a later call resumes after the last
saved epoch. The optimiser's moments are not saved: a resumed run restarts them, so it is close to, not equal
to, an uninterrupted one. :func:`shared_supernet` lets several workers of a study share one file: the first to
take its lock trains, the others wait for the lock and then load the finished super-network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import random
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.mcunet import MCUNetArch, MCUNetSpace
from search_spaces.supernet import ELASTIC_DIMENSIONS, MCUNetSupernet, elastic_arch, largest_arch
from tinynas.checkpoint import load_checkpoint, save_checkpoint
from tinynas.data import Dataset, resize
from tinynas.errors import ConfigError, check_options
from tinynas.progress import epoch_done
from tinynas.train import cap_samples, make_optimizer, seed_everything

log = logging.getLogger("tinynas.supernet")

# Progressive shrinking: the dimensions each phase after the largest arch's adds to the elastic ones.
PROGRESSIVE_PHASES = (("kernel",), ("depth",), ("expand",), ("width", "resolution"))

# Options that only say how long to train or how to score: changing them keeps (extends) the checkpoint.
_NOT_IN_HASH = ("largest_epochs", "epochs", "last_phase_epochs", "bn_calibration_samples", "supernets",
                "finetune_steps", "finetune_lr", "predictor", "predictor_archs")


@dataclasses.dataclass(frozen=True)
class SupernetConfig:
    largest_epochs: int = 3
    epochs: int = 5
    subnets_per_batch: int = 1
    batch_size: int = 64
    optimizer: str = "adamw"  # adamw | sgd (Nesterov momentum)
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    distill: bool = True
    kd_ratio: float = 1.0
    progressive: bool = False  # conf/evaluator/supernet.yaml turns it on (it needs epochs ≥ 4)
    last_phase_epochs: int | None = None  # progressive: epochs of the width + resolution phase (None: an even split)
    max_train_samples: int | None = None
    bn_calibration_samples: int = 500
    supernets: int = 1
    finetune_steps: int = 0
    finetune_lr: float = 0.001
    predictor: bool = False
    predictor_archs: int = 200

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any]) -> "SupernetConfig":
        check_options(cls, cfg, "evaluator=supernet")
        c = cls(**dict(cfg))
        if c.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"evaluator.optimizer={c.optimizer!r} is unknown; allowed: adamw, sgd")
        for name in ("largest_epochs", "epochs", "subnets_per_batch", "finetune_steps"):
            if getattr(c, name) < 0:
                raise ConfigError(f"evaluator.{name}={getattr(c, name)} must be ≥ 0")
        if c.supernets < 1:
            raise ConfigError(f"evaluator.supernets={c.supernets} must be ≥ 1")
        if c.predictor and c.predictor_archs < 3:
            raise ConfigError(f"evaluator.predictor_archs={c.predictor_archs} must be ≥ 3 to fit the predictor")
        for name in ("batch_size", "bn_calibration_samples"):
            if getattr(c, name) < 2:
                raise ConfigError(f"evaluator.{name}={getattr(c, name)} must be ≥ 2 (batch norm needs two samples)")
        for name in ("lr", "finetune_lr"):
            if getattr(c, name) <= 0:
                raise ConfigError(f"evaluator.{name}={getattr(c, name)} must be > 0")
        if c.kd_ratio < 0:
            raise ConfigError(f"evaluator.kd_ratio={c.kd_ratio} must be ≥ 0")
        if c.progressive and 0 < c.epochs < len(PROGRESSIVE_PHASES):
            raise ConfigError(f"evaluator.epochs={c.epochs} is too few for evaluator.progressive=true: it needs "
                              f"≥ {len(PROGRESSIVE_PHASES)} (one per phase: kernel, depth, expand, width) or 0")
        if c.last_phase_epochs is not None:
            most = c.epochs - len(PROGRESSIVE_PHASES) + 1
            if not c.progressive or not 1 <= c.last_phase_epochs <= most:
                raise ConfigError(f"evaluator.last_phase_epochs={c.last_phase_epochs} needs evaluator.progressive=true "
                                  f"and must be in 1..{most} (evaluator.epochs={c.epochs} less one per earlier phase)")
        return c

    @property
    def total_epochs(self) -> int:
        return self.largest_epochs + self.epochs

    def phases(self) -> list[tuple[frozenset[str], int]]:
        """(elastic dimensions, epochs) of each phase in training order; the first, the largest arch alone, has
        none (its resolution is drawn per batch all the same)."""
        if not self.progressive:
            return [(frozenset(), self.largest_epochs), (frozenset(ELASTIC_DIMENSIONS), self.epochs)]
        n = len(PROGRESSIVE_PHASES)
        if self.last_phase_epochs is None:
            base, extra = divmod(self.epochs, n)
            lengths = [base + (i >= n - extra) for i in range(n)]
        else:  # the earlier phases share what the last one leaves, evenly
            base, extra = divmod(self.epochs - self.last_phase_epochs, n - 1)
            lengths = [base + (i >= n - 1 - extra) for i in range(n - 1)] + [self.last_phase_epochs]
        out, unlocked = [(frozenset(), self.largest_epochs)], frozenset()
        for dims, length in zip(PROGRESSIVE_PHASES, lengths):
            unlocked = unlocked | set(dims)
            out.append((unlocked, length))
        return out

    def phase_of(self, epoch: int) -> tuple[frozenset[str], int, int]:
        """(elastic dimensions, first epoch, epochs) of the phase that ``epoch`` (0-based) belongs to."""
        start = 0
        for dims, length in self.phases():
            if epoch < start + length:
                return dims, start, length
            start += length
        raise ValueError(f"epoch {epoch} is past the {self.total_epochs} epochs of training")


@dataclasses.dataclass
class SupernetState:
    """A super-network and how far it was trained (``epochs`` done, mean summed loss of each)."""

    net: MCUNetSupernet
    epochs: int
    losses: list[float]


def supernet_key(space: MCUNetSpace, data: Dataset, cfg: SupernetConfig, seed: int) -> str:
    """A hash of what determines the super-network's weights: the space config, the dataset, the seed and the
    training options other than the epoch counts."""
    train = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_IN_HASH}
    if not cfg.progressive:  # off: the key of checkpoints written before the option existed
        del train["progressive"]
    key = {"space": dataclasses.asdict(space), "data": [data.name, data.in_channels, data.num_classes, len(data.train)],
           "seed": seed, "train": train}
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def checkpoint_path(run_dir: Path, space: MCUNetSpace, data: Dataset, cfg: SupernetConfig, seed: int) -> Path:
    return Path(run_dir) / f"supernet_{supernet_key(space, data, cfg, seed)}.pt"


def _lr_at(cfg: SupernetConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Cosine decay within the phase that ``epoch`` belongs to."""
    _, start, length = cfg.phase_of(epoch)
    t = ((epoch - start) * steps_per_epoch + step) / max(1, length * steps_per_epoch)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * t))


def batch_archs(space: MCUNetSpace, cfg: SupernetConfig, epoch: int, rng: random.Random) -> list[MCUNetArch]:
    """The archs one batch of ``epoch`` trains, the teacher first: in the first phase the largest arch at a random
    resolution; after it the largest, the smallest and ``subnets_per_batch`` random archs over the phase's
    elastic dimensions (all of them unless ``progressive``)."""
    largest = largest_arch(space)
    elastic, _, _ = cfg.phase_of(epoch)
    if not elastic:
        return [dataclasses.replace(largest, resolution=rng.choice(space.resolutions))]
    return [largest, elastic_arch(space, elastic, min)] + [elastic_arch(space, elastic, rng.choice)
                                                           for _ in range(cfg.subnets_per_batch)]


def _soft_ce(logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return -(F.softmax(teacher, 1) * F.log_softmax(logits, 1)).sum(1).mean()


def _load(path: Path, net: MCUNetSupernet, data: Dataset) -> tuple[int, list[float]]:
    """Load ``path`` into ``net``; the epochs it records and their losses."""
    model, _ = load_checkpoint(path, net.space, largest_arch(net.space), data.in_channels, data.num_classes)
    net.load_state_dict(model.state_dict())
    metrics = torch.load(path, map_location="cpu", weights_only=True)["metrics"]
    return int(metrics["epochs"]), [float(v) for v in metrics["losses"]]


def train_supernet(space: MCUNetSpace, data: Dataset, cfg: SupernetConfig, device: torch.device, seed: int = 0,
                   checkpoint: Path | None = None) -> SupernetState:
    """Train (or resume, or just load) the super-network of ``space`` on ``data.train``; see the module doc."""
    seed_everything(seed)
    net = MCUNetSupernet(space, data.in_channels, data.num_classes)
    done, losses = (0, []) if checkpoint is None or not Path(checkpoint).is_file() else _load(checkpoint, net, data)
    if done > cfg.total_epochs:
        log.warning("supernet: %s holds %d epochs of training, more than the %d asked (epoch counts are not in its "
                    "name, so that a longer run extends it); using it as it is: another run_dir trains afresh",
                    checkpoint, done, cfg.total_epochs)
    elif done:
        log.info("supernet: resumed %s after %d of %d epochs", checkpoint, done, cfg.total_epochs)
    net.to(device)
    if done >= cfg.total_epochs:
        return SupernetState(net.eval(), done, losses)

    g = torch.Generator().manual_seed(seed)
    x, y = cap_samples(torch.from_numpy(data.train.x), torch.from_numpy(data.train.y), cfg.max_train_samples, g)
    xs = {r: torch.from_numpy(resize(x.numpy(), r)).to(device) for r in space.resolutions}
    y = y.to(device)
    opt = make_optimizer(net.parameters(), cfg)
    ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    largest = largest_arch(space)
    steps_per_epoch = max(1, math.ceil(len(y) / cfg.batch_size))
    net.train()
    for epoch in range(done, cfg.total_epochs):
        # Per-epoch seeds: a resumed run draws the same batches and subnets as an uninterrupted one.
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        rng = random.Random(f"{seed}:{epoch}")
        total, count = 0.0, 0
        for step, i in enumerate(range(0, len(y), cfg.batch_size)):
            idx = order[i:i + cfg.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, epoch, step, steps_per_epoch)
            archs = batch_archs(space, cfg, epoch, rng)
            opt.zero_grad(set_to_none=True)
            teacher = None
            for arch in archs:
                net.set_active(arch)
                logits = net(xs[arch.resolution][idx])
                label_loss = ce(logits, y[idx])
                loss = label_loss
                if teacher is not None and cfg.distill and cfg.kd_ratio:
                    loss = loss + cfg.kd_ratio * _soft_ce(logits, teacher)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"supernet training diverged: loss is {loss.item()} "
                                             f"(try a lower evaluator.lr than {cfg.lr})")
                loss.backward()
                teacher = logits.detach() if teacher is None else teacher
                total += label_loss.item() * len(idx)
                count += len(idx)
            opt.step()
        losses.append(total / max(count, 1))
        epoch_done("supernet", epoch + 1, cfg.total_epochs, losses[-1])
        if checkpoint is not None:
            net.set_active(largest)
            save_checkpoint(Path(checkpoint), net, largest, data.in_channels, data.num_classes,
                            metrics={"epochs": epoch + 1, "losses": losses, "config": dataclasses.asdict(cfg)})
    net.set_active(largest)
    return SupernetState(net.eval(), cfg.total_epochs, losses)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while inside."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released by the OS if this process dies
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def shared_supernet(run_dir: Path, space: MCUNetSpace, data: Dataset, cfg: SupernetConfig, device: torch.device,
                    seed: int = 0) -> SupernetState:
    """The super-network checkpointed in ``run_dir``: trained (or resumed) by whichever worker takes the file
    lock first; workers that wait load the finished checkpoint."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(run_dir, space, data, cfg, seed)
    with file_lock(path.with_suffix(".lock")):
        return train_supernet(space, data, cfg, device, seed, checkpoint=path)
