"""The MCUNet / TinyNAS MobileNetV2 space (Lin et al., NeurIPS 2020; OFA-style elastic blocks).

Global width multiplier and input resolution; per stage an elastic depth; per block a kernel size and an
expand ratio. The network is: 3×3 stride-2 stem → an expand-1 MBConv → the searched stages → a 1×1
feature-mix conv (``head_channels: 0`` drops it, as MCUNet's own nets) → global average pool → classifier.

Blocks of stride 1 with equal input and output channels add an identity shortcut (``shortcut: same_shape``);
``shortcut: within_stage`` adds it only to the blocks after the first of a stage (ProxylessNAS / MCUNet's
released configs, where a stage may keep its predecessor's channels without a shortcut).
"""

from __future__ import annotations

import dataclasses
import functools
import random
from typing import Any, Sequence

from estimators.builder import GraphBuilder, symmetric_padded
from estimators.ir import Graph
from search_spaces.base import ArchSpec, SearchSpace

SHORTCUTS = ("same_shape", "within_stage")


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: nearest multiple of ``divisor``, never below 90% of ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclasses.dataclass(frozen=True)
class MCUNetArch(ArchSpec):
    """One architecture of the space; ``kernels[s]`` and ``expands[s]`` have ``depths[s]`` entries."""

    space = "mcunet"
    resolution: int
    width: float
    depths: tuple[int, ...]
    kernels: tuple[tuple[int, ...], ...]
    expands: tuple[tuple[int, ...], ...]

    def summary(self) -> str:
        """Input resolution, width multiplier and blocks per stage."""
        return f"res {self.resolution} w {self.width} depths {'-'.join(map(str, self.depths))}"


@dataclasses.dataclass(frozen=True)
class MCUNetSpace(SearchSpace):
    """Choices of the space; defaults follow MCUNet's ImageNet space (resolutions are per experiment)."""

    name = "mcunet"
    arch_class = MCUNetArch

    resolutions: tuple[int, ...] = (48, 64, 80, 96, 112, 128, 144, 160, 176)
    widths: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
    depth_choices: tuple[int, ...] = (2, 3, 4)
    kernel_choices: tuple[int, ...] = (3, 5, 7)
    expand_choices: tuple[int, ...] = (3, 4, 6)
    # (base output channels, stride of the first block) per searched stage — MobileNetV2's stages.
    stages: tuple[tuple[int, int], ...] = ((24, 2), (32, 2), (64, 2), (96, 1), (160, 2))
    stem_channels: int = 32
    first_block_channels: int = 16
    head_channels: int = 1280
    shortcut: str = "same_shape"
    dropout: float = 0.0

    def __post_init__(self):
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"search_space mcunet: shortcut={self.shortcut!r}; allowed: {', '.join(SHORTCUTS)}")
        if self.head_channels < 0:
            raise ValueError(f"search_space mcunet: head_channels={self.head_channels}; allowed: 0 (no feature mix) "
                             "or a positive channel count")
        bad = [e for e in self.expand_choices if not (isinstance(e, int) and e >= 1)]
        if bad:
            raise ValueError(f"search_space mcunet: expand_choices {bad} are not allowed; allowed: integers >= 1")

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "MCUNetSpace":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - fields)
        if unknown:
            raise ValueError(f"search_space mcunet: unknown options {unknown}; allowed: {sorted(fields)}")
        return cls(**{k: tuple(tuple(x) if isinstance(x, (list, tuple)) else x for x in v)
                      if isinstance(v, (list, tuple)) else v for k, v in cfg.items()})

    # -- channel plan ---------------------------------------------------------------------------
    def channels(self, width: float) -> dict[str, Any]:
        """The channel plan at ``width`` (computed once per width; read it, do not change it)."""
        plan = self._channel_plans.get(width)
        if plan is None:
            plan = self._channel_plans[width] = self._channel_plan(width)
        return plan

    @functools.cached_property
    def _channel_plans(self) -> dict[float, dict[str, Any]]:
        return {}

    def _channel_plan(self, width: float) -> dict[str, Any]:
        return {
            "stem": make_divisible(self.stem_channels * width),
            "first": make_divisible(self.first_block_channels * width),
            "stages": [make_divisible(c * width) for c, _ in self.stages],
            # MCUNet/OFA keep the feature-mix layer at full width for width < 1; 0: no feature mix.
            "head": make_divisible(self.head_channels * max(1.0, width)) if self.head_channels else 0,
        }

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, trial) -> MCUNetArch:
        resolution = trial.suggest_categorical("resolution", list(self.resolutions))
        width = trial.suggest_categorical("width", list(self.widths))
        depths, kernels, expands = [], [], []
        for s in range(len(self.stages)):
            d = trial.suggest_categorical(f"s{s}.depth", list(self.depth_choices))
            depths.append(d)
            kernels.append(tuple(trial.suggest_categorical(f"s{s}.b{b}.kernel", list(self.kernel_choices))
                                 for b in range(d)))
            expands.append(tuple(trial.suggest_categorical(f"s{s}.b{b}.expand", list(self.expand_choices))
                                 for b in range(d)))
        return MCUNetArch(resolution, width, tuple(depths), tuple(kernels), tuple(expands))

    def params(self, arch: MCUNetArch) -> dict[str, Any]:
        p: dict[str, Any] = {"resolution": arch.resolution, "width": arch.width}
        for s, d in enumerate(arch.depths):
            p[f"s{s}.depth"] = d
            for b in range(d):
                p[f"s{s}.b{b}.kernel"] = arch.kernels[s][b]
                p[f"s{s}.b{b}.expand"] = arch.expands[s][b]
        return p

    def random(self, rng: random.Random) -> MCUNetArch:
        depths = tuple(rng.choice(self.depth_choices) for _ in self.stages)
        return MCUNetArch(
            rng.choice(self.resolutions), rng.choice(self.widths), depths,
            tuple(tuple(rng.choice(self.kernel_choices) for _ in range(d)) for d in depths),
            tuple(tuple(rng.choice(self.expand_choices) for _ in range(d)) for d in depths),
        )

    def largest(self, like: MCUNetArch) -> MCUNetArch:
        d, n = max(self.depth_choices), len(self.stages)
        return MCUNetArch(like.resolution, max(self.widths), (d,) * n,
                          ((max(self.kernel_choices),) * d,) * n, ((max(self.expand_choices),) * d,) * n)

    def smallest(self) -> MCUNetArch:
        d, n = min(self.depth_choices), len(self.stages)
        return MCUNetArch(min(self.resolutions), min(self.widths), (d,) * n,
                          ((min(self.kernel_choices),) * d,) * n, ((min(self.expand_choices),) * d,) * n)

    def _blocks(self, arch: MCUNetArch, max_depth: int) -> list[list[tuple[int, int]]]:
        """Per stage, ``max_depth`` (kernel, expand) slots, padded from ``arch`` so depth can grow."""
        out = []
        for s, d in enumerate(arch.depths):
            slots = list(zip(arch.kernels[s], arch.expands[s]))
            slots += [slots[-1]] * (max_depth - d)
            out.append(slots)
        return out

    def _from_slots(self, resolution, width, depths, slots) -> MCUNetArch:
        return MCUNetArch(resolution, width, tuple(depths),
                          tuple(tuple(k for k, _ in slots[s][:d]) for s, d in enumerate(depths)),
                          tuple(tuple(e for _, e in slots[s][:d]) for s, d in enumerate(depths)))

    def mutate(self, arch: MCUNetArch, rng: random.Random, prob: float = 0.1) -> MCUNetArch:
        def maybe(value, choices):
            return rng.choice(choices) if rng.random() < prob else value

        max_d = max(self.depth_choices)
        slots = [[(maybe(k, self.kernel_choices), maybe(e, self.expand_choices)) for k, e in stage]
                 for stage in self._blocks(arch, max_d)]
        depths = [maybe(d, self.depth_choices) for d in arch.depths]
        return self._from_slots(maybe(arch.resolution, self.resolutions), maybe(arch.width, self.widths),
                                depths, slots)

    def crossover(self, a: MCUNetArch, b: MCUNetArch, rng: random.Random) -> MCUNetArch:
        def pick(x, y):
            return x if rng.random() < 0.5 else y

        max_d = max(self.depth_choices)
        sa, sb = self._blocks(a, max_d), self._blocks(b, max_d)
        slots = [[pick(x, y) for x, y in zip(ra, rb)] for ra, rb in zip(sa, sb)]
        depths = [pick(x, y) for x, y in zip(a.depths, b.depths)]
        return self._from_slots(pick(a.resolution, b.resolution), pick(a.width, b.width), depths, slots)

    def check(self, arch: MCUNetArch) -> None:
        def fail(field: str, value, allowed: Sequence) -> None:
            raise ValueError(f"mcunet arch: {field}={value!r} is not in the space; allowed: {list(allowed)}")

        if arch.resolution not in self.resolutions:
            fail("resolution", arch.resolution, self.resolutions)
        if arch.width not in self.widths:
            fail("width", arch.width, self.widths)
        if len(arch.depths) != len(self.stages):
            raise ValueError(f"mcunet arch: {len(arch.depths)} stage depths given, the space has {len(self.stages)} stages")
        kernel_choices, expand_choices = self.kernel_choices, self.expand_choices
        for s, d in enumerate(arch.depths):
            if d not in self.depth_choices:
                fail(f"depths[{s}]", d, self.depth_choices)
            if len(arch.kernels[s]) != d or len(arch.expands[s]) != d:
                raise ValueError(f"mcunet arch: stage {s} has depth {d} but {len(arch.kernels[s])} kernels "
                                 f"and {len(arch.expands[s])} expand ratios")
            for b, (k, e) in enumerate(zip(arch.kernels[s], arch.expands[s])):
                if k not in kernel_choices:
                    fail(f"kernels[{s}][{b}]", k, kernel_choices)
                if e not in expand_choices:
                    fail(f"expands[{s}][{b}]", e, expand_choices)

    def input_shape(self, arch: MCUNetArch, in_channels: int) -> tuple[int, ...]:
        return (arch.resolution, arch.resolution, in_channels)

    # -- block plan shared by the PyTorch and IR builders -----------------------------------------
    def blocks(self, arch: MCUNetArch) -> list[dict[str, int]]:
        """Every inverted-residual block: cin, cout, kernel, stride, expand, residual (first block included)."""
        return [dict(zip(BLOCK_FIELDS, row)) for row in self.block_rows(arch)]

    def block_rows(self, arch: MCUNetArch) -> list[tuple[int, ...]]:
        """:meth:`blocks` as rows of their values in :data:`BLOCK_FIELDS` order (what :meth:`to_ir` reads, without
        a dict per block)."""
        ch = self.channels(arch.width)
        within = self.shortcut == "within_stage"
        cin = first = ch["first"]
        plan = [(ch["stem"], first, 3, 1, 1, ch["stem"] == first and not within)]
        for (_, stride), cout, kernels, expands in zip(self.stages, ch["stages"], arch.kernels, arch.expands):
            for b, (kernel, expand) in enumerate(zip(kernels, expands)):
                s = stride if b == 0 else 1
                plan.append((cin, cout, kernel, s, expand, s == 1 and cin == cout and not (within and b == 0)))
                cin = cout
        return plan

    # -- builders -------------------------------------------------------------------------------
    def build_torch(self, arch: MCUNetArch, in_channels: int, num_classes: int):
        from torch import nn

        from search_spaces.torch_blocks import MobileNetV2Like

        self.check(arch)
        ch = self.channels(arch.width)
        plan = self.blocks(arch)
        keys = ("cin", "cout", "kernel", "stride", "expand")
        model = MobileNetV2Like(in_channels, ch["stem"], [{k: b[k] for k in keys} for b in plan],
                                ch["head"] or plan[-1]["cout"], num_classes, dropout=self.dropout)
        for block, blk in zip(model.blocks, plan):
            block.residual = blk["residual"]
        if not ch["head"]:  # no feature mix: the classifier reads the last block
            model.head = nn.Identity()
        return model

    def to_ir(self, arch: MCUNetArch, in_channels: int, num_classes: int) -> Graph:
        """The int8 TFLite graph our export (PyTorch → ONNX → onnx2tf) produces for ``arch``."""
        self.check(arch)
        ch = self.channels(arch.width)
        g = GraphBuilder(f"mcunet-{arch.hash}", self.input_shape(arch, in_channels))
        x = g.segment(("mcunet stem", ch["stem"]), g.input, "stem", _stem_ir, ch["stem"])
        for i, row in enumerate(self.block_rows(arch)):  # keys: inverted_residual_key of the block's dict
            x = g.segment(_ROW_KEY + row, x, f"block{i}", _block_row_ir, row)
        x = g.segment(("mcunet head", ch["head"], num_classes), x, "", _head_ir, ch["head"], num_classes)
        return g.finish(x)


def _stem_ir(g: GraphBuilder, x: int, channels: int, name: str) -> int:
    """IR of the stem: a stride-2 3×3 conv."""
    return _strided(g, g.conv2d, x, 3, 2, channels, activation="relu6", name=name)


def _head_ir(g: GraphBuilder, x: int, head_channels: int, num_classes: int, name: str) -> int:
    """IR of the head: the 1×1 feature mix (none when ``head_channels`` is 0), global pooling, the classifier
    (layer names after ``name``)."""
    if head_channels:
        x = g.conv2d(x, head_channels, 1, 1, activation="relu6", name=f"{name}head")
    x = g.global_avg_pool(x, keep_dims=False, name=f"{name}pool")
    return g.fully_connected(x, num_classes, per_channel=True, name=f"{name}classifier")


#: The symmetric-padding helper the space builders share (kept under its old name for importers).
_strided = symmetric_padded


def inverted_residual_key(blk: dict[str, int], activation: str = "relu6") -> tuple:
    """A ``GraphBuilder.segment`` key for :func:`inverted_residual_ir`: the whole block (its fields and their
    values) and the activation, so nothing the builder reads can be left out; flat, to hash fast."""
    return ("mbconv", activation, *blk, *blk.values())


#: The fields of an MCUNet block, in the order of :meth:`MCUNetSpace.block_rows`' rows.
BLOCK_FIELDS = ("cin", "cout", "kernel", "stride", "expand", "residual")
_ROW_KEY = ("mbconv", "relu6", *BLOCK_FIELDS)  # + a row: inverted_residual_key(dict(zip(BLOCK_FIELDS, row)))


def _block_row_ir(g: GraphBuilder, x: int, row: tuple[int, ...], name: str) -> int:
    return inverted_residual_ir(g, x, dict(zip(BLOCK_FIELDS, row)), name)


def inverted_residual_ir(g: GraphBuilder, x: int, blk: dict[str, int], name: str,
                         activation: str = "relu6") -> int:
    """IR of one MBConv block: 1×1 expand (skipped when expand is 1), k×k depthwise, 1×1 project, skip add
    (``blk["residual"]``, default: stride 1 and cin = cout)."""
    inp = x
    hidden = blk["cin"] * blk["expand"]
    if blk["expand"] != 1:
        x = g.conv2d(x, hidden, 1, 1, activation=activation, name=f"{name}/expand")
    x = _strided(g, g.depthwise_conv2d, x, blk["kernel"], blk["stride"], activation=activation, name=f"{name}/dw")
    x = g.conv2d(x, blk["cout"], 1, 1, activation=None, name=f"{name}/project")
    if blk.get("residual", blk["stride"] == 1 and blk["cin"] == blk["cout"]):
        x = g.add(x, inp, name=f"{name}/add")
    return x
