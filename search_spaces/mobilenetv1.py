"""MobileNetV1 space (Howard et al., 2017) around the MLPerf Tiny VWW reference (α = 0.25, 96×96×3).

Global width multiplier and resolution; per stage an elastic depth (1 … the stage's MobileNetV1 depth);
per depthwise-separable layer a kernel size. The network is: 3×3/2 conv → (depthwise k×k + pointwise 1×1)
layers → global average pool → classifier. Convs are padded as TensorFlow's 'same' (see
:func:`search_spaces.torch_blocks.conv_norm_act`), so the export has no PAD ops, like the Keras reference.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from estimators.builder import GraphBuilder
from estimators.ir import Graph
from search_spaces.base import ArchSpec
from search_spaces.blockwise import BlockwiseSpace, Choice
from search_spaces.mcunet import make_divisible


@dataclasses.dataclass(frozen=True)
class MobileNetV1Arch(ArchSpec):
    """``kernels[s]`` has ``depths[s]`` entries (one per depthwise-separable layer)."""

    space = "mobilenetv1"
    resolution: int
    width: float
    depths: tuple[int, ...]
    kernels: tuple[tuple[int, ...], ...]

    def summary(self) -> str:
        """Input resolution, width multiplier and depthwise-separable layers per stage."""
        return f"res {self.resolution} w {self.width} depths {'-'.join(map(str, self.depths))}"


def same_size(size: int, stride: int) -> int:
    return -(-size // stride)


def ds_layers(cin: int, size: tuple[int, int], first: dict, separable: list[dict], act: str) -> list[dict]:
    """:func:`conv_norm_act` keyword dicts of a first conv and depthwise-separable layers, each with its
    input size. ``first`` and every ``separable`` entry: cout, kernel (kh, kw), stride (sh, sw)."""
    layers = []

    def add(cin, cout, kernel, stride, groups):
        nonlocal size
        layers.append(dict(cin=cin, cout=cout, kernel=tuple(kernel), stride=tuple(stride), groups=groups, act=act,
                           in_size=size))
        size = (same_size(size[0], stride[0]), same_size(size[1], stride[1]))

    add(cin, first["cout"], first["kernel"], first["stride"], 1)
    c = first["cout"]
    for layer in separable:
        add(c, c, layer["kernel"], layer["stride"], c)
        add(c, layer["cout"], (1, 1), (1, 1), 1)
        c = layer["cout"]
    return layers


def ds_layers_ir(name: str, input_shape: tuple[int, int, int], layers: list[dict], num_classes: int) -> Graph:
    """IR of :class:`DepthwiseSeparableNet` as our export writes it: 'same' convs with fused ReLU/ReLU6
    (hard-swish as its own op), MEAN without keep_dims, a per-channel FC."""
    g = GraphBuilder(name, input_shape)
    x = g.input
    for i, layer in enumerate(layers):
        fused = layer["act"] if layer["act"] in ("relu", "relu6") else None
        depthwise = layer["groups"] > 1
        if depthwise:
            x = g.depthwise_conv2d_hw(x, layer["kernel"], layer["stride"], activation=fused, name=f"layer{i}/dw")
        else:
            x = g.conv2d_hw(x, layer["cout"], layer["kernel"], layer["stride"], activation=fused, name=f"layer{i}/conv")
        if layer["act"] == "hswish":
            x = g.hard_swish(x, name=f"layer{i}/hswish")
    x = g.global_avg_pool(x, keep_dims=False)
    x = g.fully_connected(x, num_classes, per_channel=True, name="classifier")
    return g.finish(x)


@dataclasses.dataclass(frozen=True)
class MobileNetV1Space(BlockwiseSpace):
    """Choices of the space; ``stages`` are MobileNetV1's (base channels, first stride, max depth)."""

    name = "mobilenetv1"
    arch_class = MobileNetV1Arch

    resolutions: tuple[int, ...] = (64, 80, 96, 112, 128, 160)
    widths: tuple[float, ...] = (0.25, 0.35, 0.5, 0.75, 1.0)
    kernel_choices: tuple[int, ...] = (3, 5)
    min_depth: int = 1
    stages: tuple[tuple[int, int, int], ...] = ((64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 2, 6), (1024, 2, 2))
    stem_channels: int = 32
    stem_stride: int = 2
    activation: str = "relu"
    divisor: int = 8
    dropout: float = 0.0

    def choices(self) -> dict[str, Choice]:
        return {
            "resolution": Choice("arch", self.resolutions),
            "width": Choice("arch", self.widths),
            "depths": Choice("stage", tuple(tuple(range(min(self.min_depth, d), d + 1)) for _, _, d in self.stages),
                             param="depth"),
            "kernels": Choice("block", self.kernel_choices, param="kernel"),
        }

    def validate_options(self) -> None:
        super().validate_options()
        if self.activation not in ("relu", "relu6", "hswish"):
            raise ValueError(f"search_space mobilenetv1: activation={self.activation!r}; allowed: relu, relu6, hswish")

    def input_shape(self, arch: MobileNetV1Arch, in_channels: int) -> tuple[int, ...]:
        return (arch.resolution, arch.resolution, in_channels)

    def layers(self, arch: MobileNetV1Arch, in_channels: int) -> list[dict[str, Any]]:
        def ch(c):
            return make_divisible(c * arch.width, self.divisor)

        separable = [dict(cout=ch(c), kernel=(k, k), stride=(stride if b == 0 else 1,) * 2)
                     for (c, stride, _), d, ks in zip(self.stages, arch.depths, arch.kernels)
                     for b, k in zip(range(d), ks)]
        first = dict(cout=ch(self.stem_channels), kernel=(3, 3), stride=(self.stem_stride,) * 2)
        return ds_layers(in_channels, (arch.resolution,) * 2, first, separable, self.activation)

    def build_torch(self, arch: MobileNetV1Arch, in_channels: int, num_classes: int):
        from search_spaces.torch_blocks import DepthwiseSeparableNet

        self.check(arch)
        return DepthwiseSeparableNet(self.layers(arch, in_channels), num_classes, self.dropout)

    def to_ir(self, arch: MobileNetV1Arch, in_channels: int, num_classes: int) -> Graph:
        self.check(arch)
        return ds_layers_ir(f"mobilenetv1-{arch.hash}", self.input_shape(arch, in_channels),
                            self.layers(arch, in_channels), num_classes)
