"""``evaluator=zero_cost``: a training-free score of the untrained candidate as its ``accuracy`` objective.

Proxies (``proxy:``), each from its paper, on a freshly initialised network (weights seeded by ``seed``):

- ``synflow`` (Tanaka et al. 2020, as a NAS proxy Abdelfattah et al. 2021): the network is linearised — batch
  norm removed, every weight replaced by its absolute value, double precision — and fed an all-ones input;
  R = sum of the outputs; score = Σ over conv/linear weights of θ · ∂R/∂θ. Reported as ln(score). ReLU6 and
  hard-swish become ReLU: on synflow's positive signals ReLU is the identity the paper's linearisation
  assumes, while ReLU6 clips at 6 and would zero the gradient of every channel whose (all-positive) sum passes
  6, and hard-swish is not positively homogeneous. Hard-sigmoid gates (squeeze-excitation) stay: on positive
  inputs they saturate at 1, so the gated path passes unchanged.
- ``naswot`` (Mellor et al. 2021, "Neural Architecture Search without Training"): for a minibatch of N
  inputs, the binary code of each input is which units of every ReLU-like activation are positive; with
  K_H[i, j] = number of units where codes i and j agree, score = ln|det K_H|. Hooked activations: ReLU, ReLU6,
  hard-swish (all positive exactly where their input is); hard-sigmoid gates are not rectifiers and are left
  out. Batch norm in training mode (batch statistics), dropout off.
- ``grad_norm`` (Abdelfattah et al. 2021): Σ over conv/linear layers of the L2 norm of ∂CE/∂W on a
  minibatch, training mode.
- ``params``, ``macs``: the parameter and multiply-accumulate counts of the arch's IR (``estimators``), the
  baselines a proxy has to beat.

Only the order of the scores matters (Spearman ρ against trained accuracy: ``benchmarks/zero_cost.py``). A
minibatch is drawn from the training split with ``seed``, so the same seed gives the same score.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.base import ArchSpec
from search_spaces.torch_blocks import HardSwish
from tinynas.data import Split, at_resolution
from tinynas.errors import ConfigError
from tinynas.evaluators.base import BaseEvaluator, EvaluationContext, register_evaluator
from tinynas.train import seed_everything

PROXIES = ("synflow", "naswot", "grad_norm", "params", "macs")
RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.Hardswish, HardSwish)  # positive exactly where their input is
WEIGHTED = (nn.Conv2d, nn.Linear)


def _weighted(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, WEIGHTED)]


def _replace(model: nn.Module, rule) -> None:
    """Swap every submodule ``m`` for ``rule(m)`` where that is not None."""
    for name, child in model.named_children():
        new = rule(child)
        if new is not None:
            setattr(model, name, new)
        else:
            _replace(child, rule)


def _linearise(m: nn.Module) -> nn.Module | None:
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return nn.Identity()
    if isinstance(m, RECTIFIERS):
        return nn.ReLU()
    return None


def synflow(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """SynFlow score Σ θ·∂R/∂θ of a copy of ``model`` (linearised, |θ|, float64) for one all-ones input of
    ``input_shape`` (C, H, W); ``model`` itself is left untouched."""
    net = copy.deepcopy(model)
    _replace(net, _linearise)
    net = net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    net(torch.ones((1, *input_shape), dtype=torch.float64)).sum().backward()
    return float(sum((m.weight * m.weight.grad).sum().item() for m in _weighted(net) if m.weight.grad is not None))


def naswot_kernel(codes: torch.Tensor) -> torch.Tensor:
    """K_H of binary codes (N × units): K[i, j] = units where codes i and j agree (N_A − Hamming distance)."""
    c = codes.double()
    return c @ c.T + (1 - c) @ (1 - c).T


def log_abs_det(k: torch.Tensor) -> float:
    """ln|det K|; −inf when K is singular (two inputs with the same code: in floating point its LU pivots are
    then rounding noise, not zero, so the rank decides)."""
    if int(torch.linalg.matrix_rank(k)) < len(k):
        return -math.inf
    return float(torch.linalg.slogdet(k)[1])


def naswot(model: nn.Module, x: torch.Tensor) -> float:
    """NASWOT score ln|det K_H| of ``model`` on the minibatch ``x``."""
    k = torch.zeros((len(x), len(x)), dtype=torch.float64)

    def hook(_m, _inp, out):
        k.add_(naswot_kernel((out.detach() > 0).flatten(1)))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, RECTIFIERS)]
    if not handles:
        raise ValueError("naswot needs ReLU-like activations (ReLU, ReLU6, hard-swish); the model has none")
    _train_mode_without_dropout(model)
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return log_abs_det(k)


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Σ over conv/linear layers of ‖∂CE/∂W‖₂ on the minibatch (x, y)."""
    _train_mode_without_dropout(model)
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return float(sum(m.weight.grad.norm().item() for m in _weighted(model) if m.weight.grad is not None))


def _train_mode_without_dropout(model: nn.Module) -> None:
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()


@register_evaluator
class ZeroCostEvaluator(BaseEvaluator):
    """``accuracy`` = the chosen proxy's score of the untrained arch (higher is better)."""

    name = "zero_cost"

    def __init__(self, ctx: EvaluationContext, proxy: str = "naswot", batch_size: int = 64, seed: int | None = None,
                 **unknown: Any):
        super().__init__(ctx, **unknown)
        if proxy not in PROXIES:
            raise ConfigError(f"evaluator.proxy={proxy!r} is unknown; allowed: {', '.join(PROXIES)}")
        if int(batch_size) < 2:
            raise ConfigError(f"evaluator.batch_size={batch_size} must be at least 2 (naswot compares inputs)")
        self.proxy, self.batch_size = proxy, int(batch_size)
        self.seed = ctx.seed if seed is None else int(seed)
        self._batch: Split | None = None

    def batch(self, resolution) -> tuple[torch.Tensor, torch.Tensor]:
        """The minibatch (drawn once with the seed from the training split) at ``resolution``."""
        if self._batch is None:
            train = self.ctx.data.train
            if len(train) < self.batch_size:
                raise ConfigError(f"evaluator.batch_size={self.batch_size} exceeds the {len(train)} training "
                                  f"samples")
            idx = np.sort(np.random.default_rng(self.seed).choice(len(train), self.batch_size, replace=False))
            self._batch = Split(train.x[idx], train.y[idx], train.fixed)
        b = at_resolution(self._batch, resolution)
        return torch.from_numpy(b.x), torch.from_numpy(b.y)

    def value(self, arch: ArchSpec) -> float:
        """The proxy's score of ``arch``."""
        data, space = self.ctx.data, self.ctx.space
        if self.proxy in ("params", "macs"):
            from estimators.macs import total_macs, total_params

            graph = space.to_ir(arch, data.in_channels, data.num_classes)
            return float(total_params(graph) if self.proxy == "params" else total_macs(graph))
        seed_everything(self.seed)
        model = space.build_torch(arch, data.in_channels, data.num_classes)
        if self.proxy == "synflow":
            h, w = space.input_size(arch)
            s = synflow(model, (data.in_channels, h, w))
            return math.log(s) if s > 0 else -math.inf
        x, y = self.batch(space.input_size(arch))
        torch.manual_seed(self.seed)
        return naswot(model, x) if self.proxy == "naswot" else grad_norm(model, x, y)

    def score(self, trial, arch: ArchSpec) -> dict[str, Any]:
        return {"accuracy": self.value(arch), "proxy": self.proxy}
