"""A weight-sharing super-network of the MCUNet space (Once-for-All style, Cai et al., ICLR 2020).

The super-network *is* ``space.build_torch`` of the space's largest arch (widest width, deepest stages, largest
kernel and expand ratio): same modules, same parameter names, same initialisation. Any arch of the space is a
sub-network of it, run by slicing those weights:

- width (elastic, by channel slicing): every layer keeps the first ``channels(width)`` output channels, so one
  super-network covers every width of the space (no per-width super-networks);
- expand ratio: the first ``cin × expand`` channels of the largest hidden layer (expand 1 skips the 1×1 expand);
- kernel: the centre k×k crop of the largest depthwise kernel (no OFA kernel-transform matrices, so the
  super-network's state dict stays the largest arch's and loads with :func:`tinynas.checkpoint.load_checkpoint`);
- depth: the first d blocks of each stage;
- resolution: the input is resized by the caller (the network is fully convolutional).

:meth:`MCUNetSupernet.set_active` picks the arch the forward pass runs; :meth:`MCUNetSupernet.extract` returns
``space.build_torch(arch)`` filled with the slices, a standalone model the export pipeline takes as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.mcunet import MCUNetArch, MCUNetSpace


def largest_arch(space: MCUNetSpace) -> MCUNetArch:
    """The super-network's own arch: every choice at its maximum (the highest resolution too)."""
    d, n = max(space.depth_choices), len(space.stages)
    return MCUNetArch(max(space.resolutions), max(space.widths), (d,) * n,
                      ((max(space.kernel_choices),) * d,) * n, ((max(space.expand_choices),) * d,) * n)


ELASTIC_DIMENSIONS = ("resolution", "width", "depth", "kernel", "expand")


def elastic_arch(space: MCUNetSpace, unlocked, choose) -> MCUNetArch:
    """An arch whose ``unlocked`` dimensions (of :data:`ELASTIC_DIMENSIONS`) are each ``choose(choices)`` and the
    others at their maximum. With every dimension unlocked, ``choose=rng.choice`` draws what ``space.random(rng)``
    draws and ``choose=min`` gives ``space.smallest()``; with none, it is :func:`largest_arch`."""
    unknown = set(unlocked) - set(ELASTIC_DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown elastic dimensions {sorted(unknown)}; allowed: {list(ELASTIC_DIMENSIONS)}")

    def pick(dim, choices):
        return choose(choices) if dim in unlocked else max(choices)

    depths = tuple(pick("depth", space.depth_choices) for _ in space.stages)
    resolution, width = pick("resolution", space.resolutions), pick("width", space.widths)
    return MCUNetArch(resolution, width, depths,
                      tuple(tuple(pick("kernel", space.kernel_choices) for _ in range(d)) for d in depths),
                      tuple(tuple(pick("expand", space.expand_choices) for _ in range(d)) for d in depths))


def _conv_weight(conv: nn.Conv2d, cout: int, cin: int, kernel: int) -> torch.Tensor:
    """The first ``cout`` filters over the first ``cin`` inputs (depthwise: ``cout`` channels, one input each),
    cropped to their centre ``kernel``×``kernel``."""
    w = conv.weight[:cout] if conv.groups > 1 else conv.weight[:cout, :cin]
    k = w.shape[-1]
    if kernel > k or kernel % 2 != k % 2:
        raise ValueError(f"kernel {kernel} cannot be cropped from the super-network's {k}×{k} kernel")
    start = (k - kernel) // 2
    return w[:, :, start:start + kernel, start:start + kernel]


def _batch_norm(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``bn`` on the first ``x.shape[1]`` channels; in training its running statistics are updated in place
    (slices of a contiguous vector are views), with nn.BatchNorm2d's momentum rule (None: cumulative)."""
    c = x.shape[1]
    factor = 0.0
    if bn.training and bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                        bn.training or not bn.track_running_stats, factor, bn.eps)


def _conv_bn_act(layer: nn.Sequential, x: torch.Tensor, cout: int, kernel: int) -> torch.Tensor:
    """One ``conv_bn_act`` Sequential (conv, BN[, ReLU6]) run at ``cout`` outputs and a ``kernel`` crop."""
    conv, bn = layer[0], layer[1]
    cin = x.shape[1]
    depthwise = conv.groups > 1
    if depthwise:
        cout = cin
    x = F.conv2d(x, _conv_weight(conv, cout, cin, kernel), None, conv.stride, kernel // 2,
                 groups=cin if depthwise else 1)
    x = _batch_norm(bn, x)
    return F.relu6(x) if len(layer) > 2 else x


def _copy_conv_bn(src: nn.Sequential, dst: nn.Sequential) -> None:
    """Fill the standalone ``dst`` (conv, BN[, act]) with the matching slices of ``src``."""
    conv, bn = dst[0], dst[1]
    cin = conv.in_channels
    conv.weight.copy_(_conv_weight(src[0], conv.out_channels, cin, conv.kernel_size[0]))
    c = bn.num_features
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(bn, name).copy_(getattr(src[1], name)[:c])
    bn.num_batches_tracked.copy_(src[1].num_batches_tracked)


class MCUNetSupernet(nn.Module):
    """The largest MCUNet arch of ``space`` whose forward pass runs the active sub-network (see module doc)."""

    def __init__(self, space: MCUNetSpace, in_channels: int, num_classes: int):
        super().__init__()
        if not isinstance(space, MCUNetSpace):
            raise ValueError(f"MCUNetSupernet needs the mcunet search space, not {type(space).__name__} "
                             f"({getattr(space, 'name', '?')!r})")
        self.space, self.in_channels, self.num_classes = space, in_channels, num_classes
        self.max_depth = max(space.depth_choices)
        full = space.build_torch(largest_arch(space), in_channels, num_classes)
        self.stem, self.blocks, self.head = full.stem, full.blocks, full.head
        self.dropout, self.classifier = full.dropout, full.classifier
        self.active: MCUNetArch | None = None
        self._plan: list[tuple[nn.Module, dict[str, int]]] = []
        self._stem_channels = self._head_channels = 0
        self.set_active(largest_arch(space))

    def block_indices(self, arch: MCUNetArch) -> list[int]:
        """Indices into ``self.blocks`` of ``arch``'s blocks (the first block, then the first d of each stage),
        in the order of ``space.blocks(arch)`` and so of ``build_torch(arch).blocks``."""
        return [0] + [1 + s * self.max_depth + b for s, d in enumerate(arch.depths) for b in range(d)]

    def set_active(self, arch: MCUNetArch) -> None:
        """Make ``arch`` the sub-network that :meth:`forward` runs (ValueError if it is outside the space)."""
        self.space.check(arch)
        ch = self.space.channels(arch.width)
        self._stem_channels, self._head_channels = ch["stem"], ch["head"]
        self._plan = [(self.blocks[i], blk) for i, blk in zip(self.block_indices(arch), self.space.blocks(arch))]
        self.active = arch

    def _block(self, block: nn.Module, x: torch.Tensor, blk: dict[str, int]) -> torch.Tensor:
        body = list(block.body)
        inp = x
        if len(body) == 3:  # the super-network block has a 1×1 expand
            expand, body = body[0], body[1:]
            if blk["expand"] != 1:
                x = _conv_bn_act(expand, x, blk["cin"] * blk["expand"], 1)
        x = _conv_bn_act(body[0], x, x.shape[1], blk["kernel"])
        x = _conv_bn_act(body[1], x, blk["cout"], 1)
        return x + inp if blk.get("residual", blk["stride"] == 1 and blk["cin"] == blk["cout"]) else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _conv_bn_act(self.stem, x, self._stem_channels, 3)
        for block, blk in self._plan:
            x = self._block(block, x, blk)
        if isinstance(self.head, nn.Sequential):  # the space may have no feature-mix layer
            x = _conv_bn_act(self.head, x, self._head_channels, 1)
        x = self.dropout(x.mean((2, 3)))
        return F.linear(x, self.classifier.weight[:, :x.shape[1]], self.classifier.bias)

    @torch.no_grad()
    def extract(self, arch: MCUNetArch) -> nn.Module:
        """``space.build_torch(arch)`` holding this super-network's weights for ``arch`` (and its BN statistics),
        in the super-network's train/eval mode; it computes what :meth:`forward` computes with ``arch`` active."""
        net = self.space.build_torch(arch, self.in_channels, self.num_classes)
        _copy_conv_bn(self.stem, net.stem)
        for i, dst in zip(self.block_indices(arch), net.blocks):
            src = list(self.blocks[i].body)
            dst_layers = list(dst.body)
            if len(src) > len(dst_layers):  # expand 1 in a block whose super-network has an expand layer
                src = src[1:]
            for s, d in zip(src, dst_layers):
                _copy_conv_bn(s, d)
        if isinstance(net.head, nn.Sequential):
            _copy_conv_bn(self.head, net.head)
        net.classifier.weight.copy_(self.classifier.weight[:, :net.classifier.in_features])
        net.classifier.bias.copy_(self.classifier.bias)
        return net.train(self.training)
