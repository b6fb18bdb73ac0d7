"""MobileNetV3 space (Howard et al., ICCV 2019), built from ops TensorFlow Lite Micro runs.

Global width and resolution; per stage an elastic depth and an activation (ReLU or hard-swish); per block
a kernel size, an expand ratio and squeeze-and-excitation on or off. The network is: 3×3/2 stem
(hard-swish) → an expand-1 block (ReLU; ``first_block_stride`` / ``first_block_se`` as MobileNetV3-Small's)
→ the searched stages → 1×1 head conv (hard-swish) → global average pool → [1×1 conv + hard-swish] →
classifier. An integer expand ratio e gives cin·e hidden channels; a fractional one (MobileNetV3's 2.5,
2.3, 4.5, 3.67, as timm writes them) gives make_divisible(cin·e); the SE squeeze is make_divisible(hidden ·
``se_ratio``).

What the export (PyTorch → ONNX opset 13 → onnx2tf → int8 TFLite) writes, and :meth:`to_ir` mirrors:

* hard-swish, written out as x·relu6(x+3)/6 (:class:`~search_spaces.torch_blocks.HardSwish`), is one
  HARD_SWISH op after a conv without fused activation (``nn.Hardswish`` would become RELU_0_TO_1, which
  TFLite Micro lacks); ReLU fuses into the conv;
* SE = MEAN (keep_dims) → 1×1 CONV_2D + ReLU → 1×1 CONV_2D with ReLU6 fused (hard-sigmoid's +3 folded
  into its bias) → MUL by a scalar 1/6 → MUL with the block's activation (broadcast over H×W);
* PAD before strided layers where TensorFlow's 'same' padding differs from PyTorch's (as in MCUNet).
"""

from __future__ import annotations

import dataclasses

from estimators.builder import GraphBuilder
from estimators.ir import Graph
from search_spaces.base import ArchSpec
from search_spaces.blockwise import BlockwiseSpace, Choice
from search_spaces.mcunet import _strided, make_divisible

ACTIVATIONS = ("relu", "hswish")
_ACT_COST = {"relu": 0, "hswish": 1}


@dataclasses.dataclass(frozen=True)
class MobileNetV3Arch(ArchSpec):
    """Per stage a depth and an activation; per block (``depths[s]`` of them) kernel, expand, SE (0/1)."""

    space = "mobilenetv3"
    resolution: int
    width: float
    depths: tuple[int, ...]
    activations: tuple[str, ...]
    kernels: tuple[tuple[int, ...], ...]
    expands: tuple[tuple[int, ...], ...]
    se: tuple[tuple[int, ...], ...]

    def summary(self) -> str:
        """Input resolution, width multiplier, blocks per stage and how many blocks have squeeze-excite."""
        return (f"res {self.resolution} w {self.width} depths {'-'.join(map(str, self.depths))} "
                f"se {sum(map(sum, self.se))}")


@dataclasses.dataclass(frozen=True)
class MobileNetV3Space(BlockwiseSpace):
    """Choices of the space; ``stages`` are MobileNetV3-Large's (base channels, first stride) after its first block."""

    name = "mobilenetv3"
    arch_class = MobileNetV3Arch

    resolutions: tuple[int, ...] = (64, 80, 96, 112, 128, 160)
    widths: tuple[float, ...] = (0.35, 0.5, 0.75, 1.0)
    depth_choices: tuple[int, ...] = (1, 2, 3, 4)
    kernel_choices: tuple[int, ...] = (3, 5, 7)
    expand_choices: tuple[int, ...] = (3, 4, 6)
    se_choices: tuple[int, ...] = (0, 1)
    activation_choices: tuple[str, ...] = ACTIVATIONS
    stages: tuple[tuple[int, int], ...] = ((24, 2), (40, 2), (80, 2), (112, 1), (160, 2))
    stem_channels: int = 16
    first_block_channels: int = 16
    head_channels: int = 960
    last_channels: int = 1280
    se_ratio: float = 0.25
    first_block_stride: int = 1
    first_block_se: int = 0
    dropout: float = 0.0

    def choices(self) -> dict[str, Choice]:
        n = self.num_stages
        return {
            "resolution": Choice("arch", self.resolutions),
            "width": Choice("arch", self.widths),
            "depths": Choice("stage", (self.depth_choices,) * n, param="depth"),
            "activations": Choice("stage", (self.activation_choices,) * n, cost=_ACT_COST.get, param="activation"),
            "kernels": Choice("block", self.kernel_choices, param="kernel"),
            "expands": Choice("block", self.expand_choices, param="expand"),
            "se": Choice("block", self.se_choices),
        }

    def validate_options(self) -> None:
        super().validate_options()
        bad = [a for a in self.activation_choices if a not in ACTIVATIONS]
        if bad:
            raise ValueError(f"search_space mobilenetv3: activation_choices {bad} not supported; allowed: {ACTIVATIONS}")
        if set(self.se_choices) - {0, 1}:
            raise ValueError(f"search_space mobilenetv3: se_choices={list(self.se_choices)}; allowed values: 0, 1")
        if self.first_block_stride not in (1, 2) or self.first_block_se not in (0, 1):
            raise ValueError(f"search_space mobilenetv3: first_block_stride={self.first_block_stride!r}, "
                             f"first_block_se={self.first_block_se!r}; allowed: stride 1 or 2, SE 0 or 1")
        bad = [e for e in self.expand_choices if not (isinstance(e, (int, float)) and e >= 1)]
        if bad:
            raise ValueError(f"search_space mobilenetv3: expand_choices {bad} are not allowed; allowed: numbers >= 1")

    def input_shape(self, arch: MobileNetV3Arch, in_channels: int) -> tuple[int, ...]:
        return (arch.resolution, arch.resolution, in_channels)

    # -- block plan shared by the PyTorch and IR builders -----------------------------------------
    def channels(self, width: float) -> dict[str, int]:
        return {"stem": make_divisible(self.stem_channels * width), "head": make_divisible(self.head_channels * width)}

    def blocks(self, arch: MobileNetV3Arch) -> list[dict]:
        """Every block: cin, cout, kernel, stride, expand, hidden, act, se_channels (0: no SE)."""
        cin = self.channels(arch.width)["stem"]
        first = make_divisible(self.first_block_channels * arch.width)
        plan = [self._block(cin, first, 3, self.first_block_stride, 1, "relu", self.first_block_se)]
        cin = first
        for s, (c, stride) in enumerate(self.stages):
            cout = make_divisible(c * arch.width)
            for b in range(arch.depths[s]):
                plan.append(self._block(cin, cout, arch.kernels[s][b], stride if b == 0 else 1, arch.expands[s][b],
                                        arch.activations[s], arch.se[s][b]))
                cin = cout
        return plan

    def _block(self, cin: int, cout: int, kernel: int, stride: int, expand, act: str, se: int) -> dict:
        hidden = cin * expand if float(expand).is_integer() else make_divisible(cin * expand)
        return dict(cin=cin, cout=cout, kernel=kernel, stride=stride, expand=expand, hidden=int(hidden), act=act,
                    se_channels=make_divisible(hidden * self.se_ratio) if se else 0)

    # -- builders -------------------------------------------------------------------------------
    def build_torch(self, arch: MobileNetV3Arch, in_channels: int, num_classes: int):
        from search_spaces.torch_blocks import MobileNetV3Like

        self.check(arch)
        ch = self.channels(arch.width)
        plan = self.blocks(arch)
        return MobileNetV3Like(in_channels, ch["stem"], "hswish", plan, ch["head"], "hswish",
                               self.last_channels, num_classes, self.dropout)

    def to_ir(self, arch: MobileNetV3Arch, in_channels: int, num_classes: int) -> Graph:
        """The int8 TFLite graph our export produces for ``arch`` (see the module doc)."""
        self.check(arch)
        ch = self.channels(arch.width)
        g = GraphBuilder(f"mobilenetv3-{arch.hash}", self.input_shape(arch, in_channels))
        x = _strided(g, g.conv2d, g.input, 3, 2, ch["stem"], activation=None, name="stem")
        x = g.hard_swish(x, name="stem/hswish")
        for i, blk in enumerate(self.blocks(arch)):
            x = mbconv_ir(g, x, blk, name=f"block{i}")
        x = activation_ir(g, g.conv2d(x, ch["head"], 1, 1, activation=None, name="head"), "hswish", "head")
        if self.last_channels:  # a 1×1 conv on the pooled features (see MobileNetV3Like)
            x = g.global_avg_pool(x, keep_dims=True)
            x = g.hard_swish(g.conv2d(x, self.last_channels, 1, 1, activation=None, name="last"), name="last/hswish")
            x = g.flatten(x)
        else:
            x = g.global_avg_pool(x, keep_dims=False)
        x = g.fully_connected(x, num_classes, per_channel=True, name="classifier")
        return g.finish(x)


def fused(act: str) -> str | None:
    """The activation a conv fuses (ReLU), or None when it is a separate op (hard-swish)."""
    return act if act in ("relu", "relu6") else None


def activation_ir(g: GraphBuilder, x: int, act: str, name: str) -> int:
    """The separate op of an activation a conv cannot fuse (HARD_SWISH); ``x`` as is otherwise."""
    return g.hard_swish(x, name=f"{name}/hswish") if act == "hswish" else x


def squeeze_excite_ir(g: GraphBuilder, x: int, squeeze: int, name: str) -> int:
    c = g.shape(x)[3]
    s = g.global_avg_pool(x, keep_dims=True, name=f"{name}/pool")
    s = g.conv2d(s, squeeze, 1, 1, activation="relu", name=f"{name}/reduce")
    s = g.conv2d(s, c, 1, 1, activation="relu6", name=f"{name}/expand")
    s = g.mul(s, 1.0 / 6.0, name=f"{name}/scale")
    return g.mul(x, s, name=f"{name}/gate")


def mbconv_ir(g: GraphBuilder, x: int, blk: dict, name: str) -> int:
    """IR of one :class:`~search_spaces.torch_blocks.MBConv` block."""
    inp, act = x, blk["act"]
    if blk["expand"] != 1:
        x = g.conv2d(x, blk["hidden"], 1, 1, activation=fused(act), name=f"{name}/expand")
        x = activation_ir(g, x, act, f"{name}/expand")
    x = _strided(g, g.depthwise_conv2d, x, blk["kernel"], blk["stride"], activation=fused(act), name=f"{name}/dw")
    x = activation_ir(g, x, act, f"{name}/dw")
    if blk["se_channels"]:
        x = squeeze_excite_ir(g, x, blk["se_channels"], f"{name}/se")
    x = g.conv2d(x, blk["cout"], 1, 1, activation=None, name=f"{name}/project")
    if blk["stride"] == 1 and blk["cin"] == blk["cout"]:
        x = g.add(x, inp, name=f"{name}/add")
    return x
