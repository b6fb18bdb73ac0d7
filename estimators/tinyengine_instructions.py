"""Executed instructions per layer of TinyEngine's generated code, from a per-kernel linear model fitted in an emulator.

TinyEngine's code generator drops the ops it folds (RESHAPE, QUANTIZE, DEQUANTIZE; PAD goes into the conv that
reads it) and emits one kernel call per other op: 1×1 convs (unrolled variants for 8/16/24/48 input channels),
the first 3×3 stride-2 conv, in-place depthwise convs generated per kernel size and stride, ADD, a global
average pool, the classifier as a 1×1 conv. Each kernel's instructions are linear in a few counts (MACs, output
and input elements, pixels, channels); one invoke() adds ``INVOKE`` (a constant plus a cost per layer).
Coefficients: ``data/tinyengine_instruction_model.yaml``, written by ``benchmarks/tinyengine.py`` from emulated
MCUNet archs, with the TinyEngine / CMSIS-NN commits, compiler and flags they hold for. Counts include the
firmware's marker call around each layer (a few instructions), as measured.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

from estimators.instructions import LinearInstructionModel
from estimators.mcunet_memory import TINYENGINE_VIEWS
from estimators.table import OpFacts, OpTable

DATA_DIR = Path(__file__).resolve().parent / "data"
MODEL_YAML = DATA_DIR / "tinyengine_instruction_model.yaml"
SAMPLES = DATA_DIR / "tinyengine_samples.csv"
UNROLLED_1X1 = frozenset({8, 16, 24, 48})  # input channels TinyEngine's 1×1 conv has unrolled kernels for
FALLBACK = "OTHER"  # layer kinds without a kernel of their own: fitted on the elementwise layers below
ELEMENTWISE = frozenset({"ADD", "AVERAGE_POOL_2D"})


def layer_facts(ops) -> list[OpFacts]:
    """The ops TinyEngine emits a layer for, in order (the others it folds away)."""
    return [op for op in ops if op.kind not in TINYENGINE_VIEWS]


def _in_numel(op: OpFacts) -> int:
    return math.prod(op.in_shape) if op.in_shape else 0


def _matmul_features(pixels: int, cout: int, k: int) -> list[float]:
    """Loop counts of TinyEngine's 1×1 / im2col convolution: columns in pairs (each pair widened to int16, k/4
    steps), 2 × 2 output tiles over k/4 steps, the odd output channel, the odd last pixel."""
    p2, odd, k4, c2, c1 = pixels // 2, pixels % 2, k // 4, cout // 2, cout % 2
    return [1.0, p2, p2 * k4, p2 * c2 * k4, p2 * c2, p2 * c1 * k4, p2 * c1, odd * cout * k4, odd * cout, odd * k4]


def _conv_features(op: OpFacts) -> list[float]:
    pixels = op.out_numel // max(op.out_shape[-1], 1)
    return _matmul_features(pixels, op.out_channels, op.kernel[0] * op.kernel[1] * op.in_shape[-1])


def _depthwise_features(op: OpFacts) -> list[float]:
    """Loop counts of TinyEngine's generated in-place depthwise kernel: per channel, the input copied into a
    padded column buffer row by row; per output row, output pixels in pairs and the odd one; MACs (which tell
    kernel sizes apart in the fit over all of them)."""
    _, h, w, c = op.in_shape
    _, oh, ow, _ = op.out_shape
    return [1.0, c, c * h * w, c * h, c * oh, c * oh * (ow // 2), c * oh * (ow % 2), h + w, op.macs]


def layer_features(op: OpFacts) -> tuple[str, list[float]]:
    """The TinyEngine kernel ``op`` runs and the counts its instructions are linear in (order = coefficients')."""
    kind, out = op.kind, op.out_numel
    if kind == "CONV_2D":
        cin = op.in_shape[-1]
        if op.kernel == (1, 1):
            return (f"CONV_2D/1x1_ch{cin}" if cin in UNROLLED_1X1 else "CONV_2D/1x1"), _conv_features(op)
        if op.kernel == (3, 3) and op.stride[0] == 2 and cin == 3:
            pixels = out // max(op.out_shape[-1], 1)
            return "CONV_2D/3x3s2_in3", [1.0, pixels, pixels * op.out_channels]
        return f"CONV_2D/{op.kernel[0]}x{op.kernel[1]}s{op.stride[0]}", _conv_features(op)
    if kind == "DEPTHWISE_CONV_2D" and len(op.in_shape) == 4:
        return f"DEPTHWISE_CONV_2D/{op.kernel[0]}x{op.kernel[1]}s{op.stride[0]}", _depthwise_features(op)
    if kind == "FULLY_CONNECTED":
        return kind, [1.0, op.macs, op.out_shape[-1]]
    if kind in ("MEAN", "AVERAGE_POOL_2D"):
        return "AVERAGE_POOL_2D", [1.0, _in_numel(op), out]
    if kind == "ADD":
        return kind, [1.0, out]
    return FALLBACK, generic_features(op)


def fallback(kernel: str, op: OpFacts) -> tuple[str, list[float]]:
    """For a kernel the fit met no sample of: a conv as the generic 1×1 kernel's matrix product over its im2col
    columns, a depthwise conv by the fit over every depthwise kernel, anything else as an elementwise layer."""
    if kernel.startswith("CONV_2D/"):
        return "CONV_2D/1x1", _conv_features(op)
    if kernel.startswith("DEPTHWISE_CONV_2D/"):
        return "DEPTHWISE_CONV_2D", _depthwise_features(op)
    return FALLBACK, generic_features(op)


def generic_features(op: OpFacts) -> list[float]:
    """Counts of a layer that walks its tensors once: a constant, output and input elements."""
    return [1.0, op.out_numel, _in_numel(op)]


class TinyEngineModel(LinearInstructionModel):
    """Coefficients per TinyEngine kernel, priced like TFLM's (:class:`~estimators.instructions.InstructionModel`)
    so that estimates price ``runtime=tinyengine`` alike; the overhead grows with the layers it emits."""

    default_yaml = MODEL_YAML
    key = "tinyengine instructions"

    def op_instructions(self, op: OpFacts) -> int:
        """Whole instructions of the layer TinyEngine emits for ``op`` (0 for an op it folds away)."""
        if op.kind in TINYENGINE_VIEWS:
            return 0
        kernel, x = layer_features(op)
        if kernel not in self.coefficients:
            kernel, x = fallback(kernel, op)
        coef = self.coefficients[kernel]
        return max(0, round(sum(c * v for c, v in zip(coef, x))))

    def invoked(self, table: OpTable) -> int:
        return len(layer_facts(table.ops))


@functools.lru_cache(maxsize=4)
def load_tinyengine_model(path: str | Path = MODEL_YAML) -> TinyEngineModel:
    return TinyEngineModel.from_yaml(path)
