"""``evaluator=supernet``: score archs as sub-networks of one trained weight-sharing super-network.

``prepare`` trains the MCUNet super-network once (or loads / resumes it from ``run_dir``, shared by the study's
workers; see :mod:`tinynas.supernet`). ``score`` extracts the arch's sub-network, recalibrates its batch-norm
statistics on ``bn_calibration_samples`` training images at the arch's resolution, and returns its validation
accuracy: no per-arch training, unless ``finetune_steps`` > 0: that many AdamW steps on those images (with
their labels) before the recalibration.

With ``supernets`` = n > 1, n super-networks are trained (seeds ``seed`` … ``seed + n − 1``, one checkpoint each)
and the score is the mean of the arch's accuracy in each: an ensemble that averages out the run-to-run noise of
weight sharing, at n times the training and scoring cost.

With ``predictor`` the score is instead an accuracy predictor's (:mod:`tinynas.supernet.predictor`): ``prepare``
scores ``predictor_archs`` random archs as above and fits it on them (kept in ``run_dir`` next to the
checkpoint, so workers and resumed runs reuse them), and each candidate then costs about a millisecond.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search_spaces.mcunet import MCUNetArch, MCUNetSpace
from tinynas.data import Split, at_resolution
from tinynas.errors import ConfigError
from tinynas.evaluators.base import BaseEvaluator, EvaluationContext, register_evaluator
from tinynas.report import write_json
from tinynas.supernet import SupernetConfig, SupernetState, checkpoint_path, shared_supernet, train_supernet
from tinynas.supernet.training import file_lock
from tinynas.supernet.predictor import AccuracyPredictor
from tinynas.train import accuracy, recalibrate_bn


@register_evaluator
class SupernetEvaluator(BaseEvaluator):
    name = "supernet"

    def __init__(self, ctx: EvaluationContext, **options: Any):
        super().__init__(ctx)
        if not isinstance(ctx.space, MCUNetSpace):
            raise ConfigError(f"evaluator=supernet works with search_space=mcunet only, not "
                              f"{getattr(ctx.space, 'name', type(ctx.space).__name__)!r}; use evaluator=train "
                              f"or evaluator=zero_cost for other spaces")
        self.cfg = SupernetConfig.from_cfg(options)
        self.members: list[SupernetState] = []
        self.predictor: AccuracyPredictor | None = None
        self._splits: dict[int, tuple[Split, Split]] = {}
        rng = np.random.default_rng(ctx.seed)
        n = min(self.cfg.bn_calibration_samples, len(ctx.data.train))
        keep = rng.permutation(len(ctx.data.train))[:n]
        self._calibration = Split(ctx.data.train.x[keep], ctx.data.train.y[keep])

    def prepare(self) -> None:
        """The super-network, then (with ``predictor``) the accuracy predictor."""
        self.prepare_supernet()
        if self.cfg.predictor:
            self.fit_predictor()

    @property
    def state(self) -> SupernetState | None:
        """The (first) super-network; None before :meth:`prepare_supernet`."""
        return self.members[0] if self.members else None

    @state.setter
    def state(self, value: SupernetState) -> None:
        self.members = [value]

    def prepare_supernet(self) -> SupernetState:
        """Train, resume or load the ``supernets`` super-networks (in ``ctx.run_dir`` when set, else in memory)."""
        ctx = self.ctx
        seeds = range(ctx.seed, ctx.seed + self.cfg.supernets)
        if ctx.run_dir is None:
            self.members = [train_supernet(ctx.space, ctx.data, self.cfg, ctx.device, s) for s in seeds]
        else:
            self.members = [shared_supernet(ctx.run_dir, ctx.space, ctx.data, self.cfg, ctx.device, s) for s in seeds]
        return self.state

    def fit_predictor(self) -> AccuracyPredictor:
        """Fit the accuracy predictor on supernet-scored random archs (see module doc)."""
        if self.state is None:
            self.prepare_supernet()
        archs, accuracies = self._predictor_data()
        self.predictor = AccuracyPredictor(self.ctx.space).fit(archs, accuracies)
        return self.predictor

    def _predictor_data(self) -> tuple[list[MCUNetArch], list[float]]:
        """``predictor_archs`` distinct random archs (seeded) and their supernet scores, read from or written to
        ``run_dir`` (keyed by the checkpoint, its epochs and the scoring options)."""
        cfg, ctx = self.cfg, self.ctx
        if ctx.run_dir is not None:
            stem = checkpoint_path(ctx.run_dir, ctx.space, ctx.data, cfg, ctx.seed).stem
            path = Path(ctx.run_dir) / (f"{stem}_e{self.state.epochs}_bn{cfg.bn_calibration_samples}"
                                        f"_ft{cfg.finetune_steps}x{cfg.finetune_lr:g}_n{cfg.supernets}_predictor{cfg.predictor_archs}.json")
            with file_lock(path.with_suffix(".lock")):  # one worker scores, the others wait and read
                if not path.is_file():
                    archs, accuracies = self._score_random_archs()
                    write_json(path, {"archs": [{"arch": a.to_dict(), "accuracy": v}
                                                for a, v in zip(archs, accuracies)]})
            rows = json.loads(path.read_text())["archs"]
            return [MCUNetArch.from_dict(r["arch"]) for r in rows], [float(r["accuracy"]) for r in rows]
        return self._score_random_archs()

    def _score_random_archs(self) -> tuple[list[MCUNetArch], list[float]]:
        cfg, ctx = self.cfg, self.ctx
        archs = ctx.space.distinct_random(random.Random(f"predictor:{ctx.seed}"), cfg.predictor_archs,
                                          max_draws=100 * cfg.predictor_archs)  # a small space holds fewer
        return archs, [self.supernet_accuracy(a) for a in archs]

    def splits(self, resolution: int) -> tuple[Split, Split]:
        """(batch-norm calibration images, validation split) at ``resolution``."""
        if resolution not in self._splits:
            self._splits[resolution] = (at_resolution(self._calibration, resolution),
                                        at_resolution(self.ctx.data.val, resolution))
        return self._splits[resolution]

    def subnet(self, arch: MCUNetArch, member: int = 0) -> torch.nn.Module:
        """``space.build_torch(arch)`` with the weights of super-network ``member`` and recalibrated batch norm."""
        if self.state is None:
            self.prepare_supernet()
        calibration, _ = self.splits(arch.resolution)
        model = self.members[member].net.extract(arch)
        if self.cfg.finetune_steps:
            self._finetune(model, calibration)
        recalibrate_bn(model, torch.from_numpy(calibration.x), self.ctx.device, batch_size=250,
                       max_samples=len(calibration.x))
        return model

    def _finetune(self, model: torch.nn.Module, images: Split) -> None:
        """``finetune_steps`` AdamW steps (``finetune_lr``, cross-entropy on the labels) on batches of the
        calibration images, drawn in a seeded order: the same arch always gets the same score."""
        cfg = self.cfg
        x, y = torch.from_numpy(images.x).to(self.ctx.device), torch.from_numpy(images.y).long().to(self.ctx.device)
        g = torch.Generator().manual_seed(self.ctx.seed)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.finetune_lr, weight_decay=cfg.weight_decay)
        ce = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        model.train()
        order, pos = torch.randperm(len(y), generator=g), 0
        with torch.enable_grad():  # the caller may be scoring under no_grad
            for _ in range(cfg.finetune_steps):
                if pos + cfg.batch_size > len(y) and pos:  # a new pass: a new order, no short batch
                    order, pos = torch.randperm(len(y), generator=g), 0
                idx = order[pos:pos + cfg.batch_size]
                pos += cfg.batch_size
                opt.zero_grad(set_to_none=True)
                ce(model(x[idx]), y[idx]).backward()
                opt.step()

    def supernet_accuracy(self, arch: MCUNetArch) -> float:
        """Validation accuracy of ``arch``'s sub-network (BN recalibrated), averaged over the super-networks."""
        if self.state is None:
            self.prepare_supernet()
        val = self.splits(arch.resolution)[1]
        return sum(accuracy(self.subnet(arch, i), val, self.ctx.device)
                   for i in range(len(self.members))) / len(self.members)

    def score(self, trial, arch: MCUNetArch) -> dict[str, Any]:
        if self.state is None:
            self.prepare()
        if self.predictor is not None:
            return {"accuracy": float(self.predictor.predict([arch])[0]), "supernet_epochs": self.state.epochs,
                    "predictor_loo_rmse": self.predictor.loo_rmse}
        return {"accuracy": self.supernet_accuracy(arch), "supernet_epochs": self.state.epochs}
