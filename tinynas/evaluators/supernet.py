"""``evaluator=supernet``: score archs as sub-networks of one trained weight-sharing super-network.

``prepare`` trains the MCUNet super-network once (or loads / resumes it from ``run_dir``, shared by the study's
workers; see :mod:`tinynas.supernet`). ``score`` extracts the arch's sub-network, recalibrates its batch-norm
statistics on ``bn_calibration_samples`` training images at the arch's resolution, and returns its validation
accuracy: no per-arch training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from search_spaces.mcunet import MCUNetArch, MCUNetSpace
from tinynas.data import Split, at_resolution
from tinynas.errors import ConfigError
from tinynas.evaluators.base import BaseEvaluator, EvaluationContext, register_evaluator
from tinynas.supernet import SupernetConfig, SupernetState, shared_supernet, train_supernet
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
        self.state: SupernetState | None = None
        self._splits: dict[int, tuple[Split, Split]] = {}
        rng = np.random.default_rng(ctx.seed)
        n = min(self.cfg.bn_calibration_samples, len(ctx.data.train))
        self._calibration = Split(ctx.data.train.x[rng.permutation(len(ctx.data.train))[:n]], ctx.data.train.y[:0])

    def prepare(self) -> None:
        """Train, resume or load the super-network (in ``ctx.run_dir`` when set, else in memory)."""
        ctx = self.ctx
        if ctx.run_dir is None:
            self.state = train_supernet(ctx.space, ctx.data, self.cfg, ctx.device, ctx.seed)
        else:
            self.state = shared_supernet(ctx.run_dir, ctx.space, ctx.data, self.cfg, ctx.device, ctx.seed)

    def splits(self, resolution: int) -> tuple[Split, Split]:
        """(batch-norm calibration images, validation split) at ``resolution``."""
        if resolution not in self._splits:
            self._splits[resolution] = (at_resolution(self._calibration, resolution),
                                        at_resolution(self.ctx.data.val, resolution))
        return self._splits[resolution]

    def subnet(self, arch: MCUNetArch) -> torch.nn.Module:
        """``space.build_torch(arch)`` with the super-network's weights and recalibrated batch norm."""
        if self.state is None:
            self.prepare()
        calibration, _ = self.splits(arch.resolution)
        model = self.state.net.extract(arch)
        recalibrate_bn(model, torch.from_numpy(calibration.x), self.ctx.device, batch_size=250,
                       max_samples=len(calibration.x))
        return model

    def score(self, trial, arch: MCUNetArch) -> dict[str, Any]:
        model = self.subnet(arch)
        return {"accuracy": accuracy(model, self.splits(arch.resolution)[1], self.ctx.device),
                "supernet_epochs": self.state.epochs}
