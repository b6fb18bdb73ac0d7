"""DS-CNN space (Zhang et al., "Hello Edge", 2017) around the MLPerf Tiny KWS reference, for spectrograms
and time series.

The input is H×W×C with H×W chosen from ``input_sizes``: MFCC frames (49×10×1 for keyword spotting) or a
1-D signal as H×1 (e.g. 128×1×3 for a 3-axis accelerometer), with rectangular kernels (kh, kw) such as 3×1.
The network is: a first kh×kw conv → ``depths`` (depthwise kh×kw + pointwise 1×1) layers, each with its own
channels, kernel and stride → global average pool → classifier. Convs are padded as TensorFlow's 'same'.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from estimators.ir import Graph
from search_spaces.base import ArchSpec
from search_spaces.blockwise import BlockwiseSpace, Choice
from search_spaces.mobilenetv1 import ds_layers, ds_layers_ir


@dataclasses.dataclass(frozen=True)
class DSCNNArch(ArchSpec):
    """One stage of ``depths[0]`` depthwise-separable layers; per layer its channels, kernel and stride."""

    space = "dscnn"
    input_size: tuple[int, int]
    first_kernel: tuple[int, int]
    first_stride: tuple[int, int]
    first_channels: int
    depths: tuple[int]
    channels: tuple[tuple[int, ...]]
    kernels: tuple[tuple[tuple[int, int], ...]]
    strides: tuple[tuple[tuple[int, int], ...]]

    def summary(self) -> str:
        """Input H×W, the first conv (channels @ kernel / stride) and the channels of each separable layer."""
        (h, w), (kh, kw), (sh, sw) = self.input_size, self.first_kernel, self.first_stride
        layers = "-".join(str(c) for stage in self.channels for c in stage)
        return f"in {h}x{w} conv {self.first_channels}@{kh}x{kw}/{sh}x{sw} ds {layers}"


def _stride_cost(stride: tuple[int, int]) -> int:
    return -stride[0] * stride[1]  # a larger stride is cheaper


@dataclasses.dataclass(frozen=True)
class DSCNNSpace(BlockwiseSpace):
    """Choices of the space; the defaults cover the MLPerf Tiny KWS DS-CNN (49×10 MFCC, 10×4/2, 4 × 64)."""

    name = "dscnn"
    arch_class = DSCNNArch
    input_fields = ("input_size",)

    input_sizes: tuple[tuple[int, int], ...] = ((49, 10),)
    first_kernels: tuple[tuple[int, int], ...] = ((10, 4),)
    first_strides: tuple[tuple[int, int], ...] = ((2, 2), (1, 1))
    first_channel_choices: tuple[int, ...] = (32, 48, 64, 96, 128)
    depth_choices: tuple[int, ...] = (2, 3, 4, 5, 6)
    channel_choices: tuple[int, ...] = (32, 48, 64, 96, 128)
    kernel_choices: tuple[tuple[int, int], ...] = ((3, 3), (5, 5))
    stride_choices: tuple[tuple[int, int], ...] = ((1, 1),)
    activation: str = "relu"
    dropout: float = 0.0

    @property
    def num_stages(self) -> int:
        return 1

    def choices(self) -> dict[str, Choice]:
        return {
            "input_size": Choice("arch", self.input_sizes),
            "first_kernel": Choice("arch", self.first_kernels),
            "first_stride": Choice("arch", self.first_strides, cost=_stride_cost),
            "first_channels": Choice("arch", self.first_channel_choices),
            "depths": Choice("stage", (self.depth_choices,), param="depth"),
            "channels": Choice("block", self.channel_choices),
            "kernels": Choice("block", self.kernel_choices, param="kernel"),
            "strides": Choice("block", self.stride_choices, cost=_stride_cost, param="stride"),
        }

    def validate_options(self) -> None:
        super().validate_options()
        for option in ("input_sizes", "first_kernels", "first_strides", "kernel_choices", "stride_choices"):
            bad = [v for v in getattr(self, option) if not (isinstance(v, tuple) and len(v) == 2)]
            if bad:
                raise ValueError(f"search_space dscnn: {option} entries must be [height, width] pairs, got {bad}")
        if self.activation not in ("relu", "relu6", "hswish"):
            raise ValueError(f"search_space dscnn: activation={self.activation!r}; allowed: relu, relu6, hswish")

    def input_shape(self, arch: DSCNNArch, in_channels: int) -> tuple[int, ...]:
        return (*arch.input_size, in_channels)

    def layers(self, arch: DSCNNArch, in_channels: int) -> list[dict[str, Any]]:
        first = dict(cout=arch.first_channels, kernel=arch.first_kernel, stride=arch.first_stride)
        separable = [dict(cout=c, kernel=k, stride=s)
                     for c, k, s in zip(arch.channels[0], arch.kernels[0], arch.strides[0])]
        return ds_layers(in_channels, arch.input_size, first, separable, self.activation)

    def build_torch(self, arch: DSCNNArch, in_channels: int, num_classes: int):
        from search_spaces.torch_blocks import DepthwiseSeparableNet

        self.check(arch)
        return DepthwiseSeparableNet(self.layers(arch, in_channels), num_classes, self.dropout)

    def to_ir(self, arch: DSCNNArch, in_channels: int, num_classes: int) -> Graph:
        self.check(arch)
        return ds_layers_ir(f"dscnn-{arch.hash}", self.input_shape(arch, in_channels),
                            self.layers(arch, in_channels), num_classes)
