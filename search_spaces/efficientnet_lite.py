"""EfficientNet-lite space (Tan & Le, 2019; the "lite" variants of tensorflow/tpu ``efficientnet/lite``).

EfficientNet-B0's MBConv stages without squeeze-and-excitation, ReLU6 everywhere, stem (32) and head
(1280) not scaled, the first and last stages' repeats not scaled. The searched choices are EfficientNet's
compound-scaling coefficients — width, depth (repeats = ceil(depth · base repeats)) and resolution,
independently, so every point of the lite0…lite4 table (:data:`LITE_SCALING`) is in a space whose choices
include it — plus a kernel size and an expand ratio per block. The export is MCUNet's (same blocks, same
PAD ops before strided layers; see :mod:`search_spaces.mcunet`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from estimators.builder import GraphBuilder
from estimators.ir import Graph
from search_spaces.base import ArchSpec
from search_spaces.blockwise import BlockwiseSpace, Choice
from search_spaces.mcunet import _strided, inverted_residual_ir, inverted_residual_key, make_divisible

#: EfficientNet-lite (width, depth, resolution) coefficients, from tensorflow/tpu efficientnet_lite_builder.py.
LITE_SCALING: dict[str, tuple[float, float, int]] = {
    "lite0": (1.0, 1.0, 224), "lite1": (1.0, 1.1, 240), "lite2": (1.1, 1.2, 260),
    "lite3": (1.2, 1.4, 280), "lite4": (1.4, 1.8, 300),
}
#: EfficientNet-B0's kernel size per searched stage (the first e1 3×3 block is fixed); every expand is 6.
B0_KERNELS = (3, 5, 3, 5, 5, 3)


@dataclasses.dataclass(frozen=True)
class EfficientNetLiteArch(ArchSpec):
    """``kernels[s]`` / ``expands[s]`` have as many entries as stage ``s`` has blocks at depth ``depth``."""

    space = "efficientnet_lite"
    resolution: int
    width: float
    depth: float
    kernels: tuple[tuple[int, ...], ...]
    expands: tuple[tuple[int, ...], ...]

    def summary(self) -> str:
        """Input resolution, width and depth multipliers (EfficientNet's compound scaling)."""
        return f"res {self.resolution} w {self.width} depth {self.depth}"


@dataclasses.dataclass(frozen=True)
class EfficientNetLiteSpace(BlockwiseSpace):
    """Choices of the space; ``stages`` are EfficientNet-B0's searched stages (channels, stride, repeats)."""

    name = "efficientnet_lite"
    arch_class = EfficientNetLiteArch

    resolutions: tuple[int, ...] = (96, 128, 160, 192, 224)
    widths: tuple[float, ...] = (0.25, 0.35, 0.5, 0.75, 1.0)
    depth_coefficients: tuple[float, ...] = (0.5, 0.75, 1.0, 1.1, 1.2)
    kernel_choices: tuple[int, ...] = (3, 5)
    expand_choices: tuple[int, ...] = (3, 4, 6)
    stages: tuple[tuple[int, int, int], ...] = ((24, 2, 2), (40, 2, 2), (80, 2, 3), (112, 1, 3), (192, 2, 4),
                                               (320, 1, 1))
    stem_channels: int = 32
    first_block_channels: int = 16
    head_channels: int = 1280
    dropout: float = 0.0

    def choices(self) -> dict[str, Choice]:
        return {
            "resolution": Choice("arch", self.resolutions),
            "width": Choice("arch", self.widths),
            "depth": Choice("arch", self.depth_coefficients),
            "kernels": Choice("block", self.kernel_choices, param="kernel"),
            "expands": Choice("block", self.expand_choices, param="expand"),
        }

    def depth(self, values: dict[str, Any], s: int) -> int:
        repeats = self.stages[s][2]
        if s == len(self.stages) - 1:  # lite: the last stage is not scaled
            return repeats
        return int(math.ceil(values["depth"] * repeats))

    def input_shape(self, arch: EfficientNetLiteArch, in_channels: int) -> tuple[int, ...]:
        return (arch.resolution, arch.resolution, in_channels)

    def blocks(self, arch: EfficientNetLiteArch) -> list[dict[str, int]]:
        """Every MBConv block: cin, cout, kernel, stride, expand (the fixed first block included)."""
        first = make_divisible(self.first_block_channels * arch.width)
        plan = [dict(cin=self.stem_channels, cout=first, kernel=3, stride=1, expand=1)]
        cin = first
        for (c, stride, _), ks, es in zip(self.stages, arch.kernels, arch.expands):
            cout = make_divisible(c * arch.width)
            for b, (k, e) in enumerate(zip(ks, es)):
                plan.append(dict(cin=cin, cout=cout, kernel=k, stride=stride if b == 0 else 1, expand=e))
                cin = cout
        return plan

    def build_torch(self, arch: EfficientNetLiteArch, in_channels: int, num_classes: int):
        from search_spaces.torch_blocks import MobileNetV2Like

        self.check(arch)
        return MobileNetV2Like(in_channels, self.stem_channels, self.blocks(arch), self.head_channels, num_classes,
                               dropout=self.dropout)

    def to_ir(self, arch: EfficientNetLiteArch, in_channels: int, num_classes: int) -> Graph:
        self.check(arch)
        g = GraphBuilder(f"efficientnet_lite-{arch.hash}", self.input_shape(arch, in_channels))
        x = _strided(g, g.conv2d, g.input, 3, 2, self.stem_channels, activation="relu6", name="stem")
        for i, blk in enumerate(self.blocks(arch)):
            x = g.segment(inverted_residual_key(blk), x, f"block{i}", inverted_residual_ir, blk)
        x = g.conv2d(x, self.head_channels, 1, 1, activation="relu6", name="head")
        x = g.global_avg_pool(x, keep_dims=False)
        x = g.fully_connected(x, num_classes, per_channel=True, name="classifier")
        return g.finish(x)

    def lite(self, name: str) -> EfficientNetLiteArch:
        """EfficientNet-``name`` ('lite0' … 'lite4'): B0's kernels, expand 6, the table's coefficients."""
        if name not in LITE_SCALING:
            raise ValueError(f"unknown EfficientNet-lite {name!r}; known: {', '.join(LITE_SCALING)}")
        width, depth, resolution = LITE_SCALING[name]
        values = {"depth": depth}
        counts = [self.depth(values, s) for s in range(self.num_stages)]
        arch = EfficientNetLiteArch(resolution, width, depth, tuple((k,) * n for k, n in zip(B0_KERNELS, counts)),
                                    tuple((6,) * n for n in counts))
        self.check(arch)
        return arch
