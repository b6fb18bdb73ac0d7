"""Quantization-aware fine-tuning that the ONNX → onnx2tf int8 export still converts.

While fine-tuning, every conv / linear weight is fake-quantized per output channel, symmetric int8 in
[-127, 127] (what the TFLite converter does; per-channel symmetric scales commute with batch-norm folding, so
quantizing the unfolded weight simulates the folded int8 weight exactly), and the output of every conv-BN-act
unit, residual block and the classifier is fake-quantized per tensor, asymmetric int8, over a moving min/max
range. Gradients pass straight through. Everything is added through parametrizations and forward hooks that
:meth:`QAT.remove` takes away, so the exported model is a plain float model; calibration stays onnx2tf's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from tinynas.data import Split
from tinynas.train import LossFn, TrainConfig, fit


class WeightFakeQuant(nn.Module):
    """Per-output-channel symmetric int8 fake quantization of a weight (straight-through gradient)."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale = w.detach().abs().flatten(1).amax(1).clamp_min(1e-8) / 127.0
        zero = torch.zeros(len(scale), dtype=torch.int32, device=w.device)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


class ActivationFakeQuant(nn.Module):
    """Forward hook: per-tensor asymmetric int8 fake quantization over a moving-average min/max range
    (widened to include 0, as TFLite requires), updated in training mode only. The range is kept in buffers
    that live in the model's state dict while instrumented, so a resumed QAT run continues with it."""

    def __init__(self, momentum: float = 0.05):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("lo", torch.tensor(float("nan")))
        self.register_buffer("hi", torch.tensor(float("nan")))

    def __call__(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        fresh = bool(torch.isnan(self.lo))
        if module.training or fresh:
            lo, hi = output.detach().min(), output.detach().max()
            if fresh:
                self.lo.copy_(lo), self.hi.copy_(hi)
            else:
                self.lo.add_(self.momentum * (lo - self.lo)), self.hi.add_(self.momentum * (hi - self.hi))
        lo, hi = min(float(self.lo), 0.0), max(float(self.hi), 0.0)
        scale = max(hi - lo, 1e-8) / 255.0
        zero = int(max(-128, min(127, round(-128 - lo / scale))))
        return torch.fake_quantize_per_tensor_affine(output, scale, zero, -128, 127)


OBSERVERS = "qat_observers"


def _is_conv_unit(m: nn.Module) -> bool:
    return isinstance(m, nn.Sequential) and any(isinstance(c, nn.Conv2d) for c in m.children())


def quantized_outputs(model: nn.Module) -> list[nn.Module]:
    """Modules whose outputs are int8 tensors in the exported model: conv-BN-act units, residual blocks, linears."""
    return [m for m in model.modules()
            if _is_conv_unit(m) or getattr(m, "residual", False) is True or isinstance(m, nn.Linear)]


@dataclasses.dataclass
class QAT:
    """The fake-quant instrumentation of one model; :meth:`remove` restores a plain float model."""

    model: nn.Module
    handles: list
    weights: list[nn.Module]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        if hasattr(self.model, OBSERVERS):
            delattr(self.model, OBSERVERS)
        for m in self.weights:
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
        self.handles, self.weights = [], []


def prepare_qat(model: nn.Module) -> QAT:
    """Instrument ``model`` in place for quantization-aware training."""
    weights = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for m in weights:
        parametrize.register_parametrization(m, "weight", WeightFakeQuant())
    targets = quantized_outputs(model)
    observers = nn.ModuleList(ActivationFakeQuant() for _ in targets)
    handles = [m.register_forward_hook(obs) for m, obs in zip(targets, observers)]
    model.add_module(OBSERVERS, observers.to(next(model.parameters()).device))  # checkpointed with the model
    return QAT(model, handles, weights)


def qat_finetune(model: nn.Module, train: Split, cfg: TrainConfig, device: torch.device, seed: int = 0,
                 loss_fn: LossFn | None = None, checkpoint: Path | None = None) -> nn.Module:
    """Fine-tune ``model`` in place under fake quantization (``cfg`` holds the QAT epochs and learning rate);
    returns it as a plain float model ready for export."""
    qat = prepare_qat(model)
    try:
        fit(model, train, cfg, device, seed=seed, loss_fn=loss_fn, checkpoint=checkpoint, stage="QAT")
    finally:
        qat.remove()
    return model
