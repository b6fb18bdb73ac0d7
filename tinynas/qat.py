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


class ActivationFakeQuant:
    """Forward hook: per-tensor asymmetric int8 fake quantization over a moving-average min/max range
    (widened to include 0, as TFLite requires), updated in training mode only."""

    def __init__(self, momentum: float = 0.05):
        self.momentum, self.lo, self.hi = momentum, None, None

    def __call__(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        if module.training or self.lo is None:
            lo, hi = float(output.detach().min()), float(output.detach().max())
            if self.lo is None:
                self.lo, self.hi = lo, hi
            else:
                self.lo += self.momentum * (lo - self.lo)
                self.hi += self.momentum * (hi - self.hi)
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        scale = max(hi - lo, 1e-8) / 255.0
        zero = int(max(-128, min(127, round(-128 - lo / scale))))
        return torch.fake_quantize_per_tensor_affine(output, scale, zero, -128, 127)


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
        for m in self.weights:
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
        self.handles, self.weights = [], []


def prepare_qat(model: nn.Module) -> QAT:
    """Instrument ``model`` in place for quantization-aware training."""
    weights = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for m in weights:
        parametrize.register_parametrization(m, "weight", WeightFakeQuant())
    handles = [m.register_forward_hook(ActivationFakeQuant()) for m in quantized_outputs(model)]
    return QAT(model, handles, weights)


def qat_finetune(model: nn.Module, train: Split, cfg: TrainConfig, device: torch.device, seed: int = 0,
                 loss_fn: LossFn | None = None, checkpoint: Path | None = None) -> nn.Module:
    """Fine-tune ``model`` in place under fake quantization (``cfg`` holds the QAT epochs and learning rate);
    returns it as a plain float model ready for export."""
    qat = prepare_qat(model)
    try:
        fit(model, train, cfg, device, seed=seed, loss_fn=loss_fn, checkpoint=checkpoint)
    finally:
        qat.remove()
    return model
