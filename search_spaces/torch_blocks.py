"""PyTorch building blocks shared by the MobileNet-style families."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand (absent when expand is 1), k×k depthwise, linear 1×1 project."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn_act(cin, hidden, 1))
        layers.append(conv_bn_act(hidden, hidden, kernel, stride, groups=hidden))
        layers.append(conv_bn_act(hidden, cout, 1, act=False))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y + x if self.residual else y


class MobileNetV2Like(nn.Module):
    """Stem → inverted-residual blocks → 1×1 feature mix → global average pool → classifier."""

    def __init__(self, in_channels: int, stem: int, blocks: list[dict[str, int]], head: int, num_classes: int,
                 dropout: float = 0.0):
        super().__init__()
        self.stem = conv_bn_act(in_channels, stem, 3, 2)
        self.blocks = nn.Sequential(*(InvertedResidual(**b) for b in blocks))
        self.head = conv_bn_act(blocks[-1]["cout"], head, 1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(head, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean((2, 3))
        return self.classifier(self.dropout(x))


# -- appended: TFLite-Micro-friendly activations, squeeze-and-excitation, TF-'same' convs -----------
class HardSwish(nn.Module):
    """x · relu6(x + 3) / 6 written out: onnx2tf and the TFLite converter turn it into one HARD_SWISH op.
    (``nn.Hardswish`` at ONNX opset 13 becomes MUL/ADD/RELU_0_TO_1, and TFLite Micro has no RELU_0_TO_1.)"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.nn.functional.relu6(x + 3.0) * (1.0 / 6.0)


class HardSigmoid(nn.Module):
    """relu6(x + 3) / 6 written out: after a conv it exports as that conv (the +3 folded into its bias,
    ReLU6 fused) and one MUL by a scalar 1/6."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.relu6(x + 3.0) * (1.0 / 6.0)


ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": HardSwish}


def activation(name: str | None) -> nn.Module:
    """The module of activation ``name`` (None: identity)."""
    if name is None:
        return nn.Identity()
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is not supported; allowed: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) of one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_norm_act(cin: int, cout: int, kernel: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                  groups: int = 1, act: str | None = "relu6", in_size: tuple[int, int] | None = None) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + activation ``act``.

    Padded like PyTorch (k//2 each side) when ``in_size`` is None; else like TensorFlow's 'same' for an
    input of ``in_size`` (H, W): in the conv where that padding is symmetric, else by a ZeroPad2d that the
    ONNX simplifier folds back into the conv (so onnx2tf writes one 'same' conv, no PAD).
    """
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    layers: list[nn.Module] = []
    if in_size is None:
        padding = (kh // 2, kw // 2)
    else:
        (top, bottom), (left, right) = tf_same_pads(in_size[0], kh, sh), tf_same_pads(in_size[1], kw, sw)
        if top == bottom and left == right:
            padding = (top, left)
        else:
            layers.append(nn.ZeroPad2d((left, right, top, bottom)))
            padding = (0, 0)
    layers += [nn.Conv2d(cin, cout, (kh, kw), (sh, sw), padding, groups=groups, bias=False), nn.BatchNorm2d(cout),
               activation(act)]
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """x · hard_sigmoid(W2 relu(W1 mean(x))) with 1×1 convs: TFLite MEAN, CONV_2D, CONV_2D, MUL, MUL."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = HardSigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(torch.relu(self.reduce(s))))


class MBConv(nn.Module):
    """MobileNetV3 block: 1×1 expand (absent when expand is 1), k×k depthwise, optional SE, linear 1×1
    project, identity shortcut when shapes allow; ``act`` after the expand and depthwise convs."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: float, act: str = "relu6",
                 se_channels: int = 0, hidden: int | None = None):
        super().__init__()
        hidden = hidden or int(cin * expand)  # explicit for fractional ratios (MobileNetV3's 72, 88, 184 ...)
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_norm_act(cin, hidden, 1, act=act))
        layers.append(conv_norm_act(hidden, hidden, kernel, stride, groups=hidden, act=act))
        if se_channels:
            layers.append(SqueezeExcite(hidden, se_channels))
        layers.append(conv_norm_act(hidden, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y + x if self.residual else y


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class MobileNetV3Like(nn.Module):
    """Stem → MBConv blocks → 1×1 head conv → global average pool → [FC + act] → classifier."""

    def __init__(self, in_channels: int, stem: int, stem_act: str, blocks: list[dict], head: int, head_act: str,
                 last: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.stem = conv_norm_act(in_channels, stem, 3, 2, act=stem_act)
        self.blocks = nn.Sequential(*(MBConv(**b) for b in blocks))
        self.head = conv_norm_act(blocks[-1]["cout"], head, 1, act=head_act)
        # A 1×1 conv on the pooled features, as in the paper: as a Linear, onnx2tf + the TFLite converter
        # would fold hard-swish's +3 into a second copy of its weights instead of emitting HARD_SWISH.
        self.last = nn.Sequential(nn.Conv2d(head, last, 1), activation(head_act)) if last else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(last or head, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        x = self.last(x.mean((2, 3), keepdim=True)).flatten(1) if self.last is not None else x.mean((2, 3))
        return self.classifier(self.dropout(x))


class DepthwiseSeparableNet(nn.Module):
    """MobileNetV1 / DS-CNN: a first conv, (depthwise k×k + pointwise 1×1) layers, global average pool,
    classifier. ``layers`` are :func:`conv_norm_act` keyword dicts (TF-'same' padded via ``in_size``)."""

    def __init__(self, layers: list[dict], num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.features = nn.Sequential(*(conv_norm_act(**kw) for kw in layers))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(layers[-1]["cout"], num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x).mean((2, 3))))
