"""Known reference networks as named points of our search spaces, with their published MACs and params.

``named_arch(name)`` gives the space (name and options), the arch, the dataset shape it was published for
(input channels, classes) and the published figures with their source; ``point.space()`` /
``point.to_ir()`` / ``point.build_torch()`` build it. The IRs are of our export (MEAN + per-channel FC
head, no softmax, PAD ops where our PyTorch padding differs from TensorFlow's): MACs and weight shapes are
those of the published models. Published "params" are counted differently by each source (see
``NamedArch.params_counting``); MLPerf Tiny's figures are exact, the others rounded.
"""

from __future__ import annotations

import csv
import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

from search_spaces.registry import get_space


@dataclasses.dataclass(frozen=True)
class NamedArch:
    """A published network as a point of ``space_name`` configured with ``options``."""

    name: str
    space_name: str
    options: dict[str, Any]
    arch: dict[str, Any]
    in_channels: int
    num_classes: int
    published_macs: int
    published_params: int
    source: str
    #: Unit the published figures are rounded to (1: exact).
    macs_rounding: float = 1
    params_rounding: float = 1
    #: What the published params count: "file" (every constant of the .tflite: weights, biases, a Flatten's
    #: shape), "weights" (conv/FC weights + classifier bias, TF-slim), "torch" (trainable PyTorch
    #: parameters, batch norm's γ and β included), "torchvision" (the same count for torchvision's module,
    #: from the IR: weights and biases plus one more per batch-normed channel, i.e. every conv but the SE
    #: convs and the pooled 1×1 conv before the classifier).
    params_counting: str = "file"

    def space(self):
        return get_space(self.space_name, self.options)

    def spec(self):
        """The arch as its space's ArchSpec (checked against the space)."""
        return self.space().decode(self.arch)

    def to_ir(self):
        """The IR as published (its input channels and classes), named after the point."""
        return self.space().to_ir(self.spec(), self.in_channels, self.num_classes).with_name(self.name)

    def build_torch(self):
        return self.space().build_torch(self.spec(), self.in_channels, self.num_classes)

    def __iter__(self):  # (space_name, options, arch) unpacking
        return iter((self.space_name, self.options, self.spec()))


def _mobilenetv2(width: float, resolution: int, macs: int, params: int, macs_rounding: float) -> NamedArch:
    # MobileNetV2 (Sandler et al., 2018) in the MCUNet space: its 7 bottleneck stages, all 3×3 expand 6,
    # the 1280-channel feature mix kept at full width below 1.0 (as the released TF-slim checkpoints).
    stages = [[24, 2], [32, 2], [64, 2], [96, 1], [160, 2], [320, 1]]
    depths = [2, 3, 4, 3, 3, 1]
    options = {"resolutions": [resolution], "widths": [width], "depth_choices": [1, 2, 3, 4], "kernel_choices": [3],
               "expand_choices": [6], "stages": stages, "head_channels": 1280}
    arch = {"resolution": resolution, "width": width, "depths": depths, "kernels": [[3] * d for d in depths],
            "expands": [[6] * d for d in depths]}
    return NamedArch(f"mobilenetv2-{width}-{resolution}", "mcunet", options, arch, 3, 1000, macs, params,
                     "TF-slim MobileNetV2 table (tensorflow/models research/slim/nets/mobilenet: MMACs, M params; "
                     "1001 classes there, 1000 here)", macs_rounding, 1e4, "weights")


def _lite(name: str, macs: int, params: int) -> NamedArch:
    from search_spaces.efficientnet_lite import LITE_SCALING, EfficientNetLiteSpace

    width, depth, resolution = LITE_SCALING[name]
    options = {"resolutions": [resolution], "widths": [width], "depth_coefficients": [depth], "kernel_choices": [3, 5],
               "expand_choices": [6]}
    arch = EfficientNetLiteSpace.from_config(options).lite(name).to_dict()
    return NamedArch(f"efficientnet-{name}", "efficientnet_lite", options, arch, 3, 1000, macs, params,
                     "params: tensorflow/tpu efficientnet/lite README (0.1 M); MACs: d-li14/efficientnet-lite.pytorch "
                     "README (GFLOPs to 0.001; the TF README's 'MAdds' are 3-6% higher and not conv MACs alone)",
                     1e6, 1e5, "torch")


def _mobilenetv3(size: str, stages, depths, activations, kernels, expands, se, head: int, last: int, first: dict,
                 macs: int, macs_rounding: float, params: int, source: str) -> NamedArch:
    """MobileNetV3-``size`` 1.0 at 224 (Howard et al., ICCV 2019, Tables 1 and 2) in the mobilenetv3 space:
    expansion ratios as timm writes them (hidden = make_divisible(cin · e)), SE squeeze make_divisible(hidden/4),
    the 1×1 head conv and the pooled 1×1 conv + hard-swish before the classifier; no SE on the head conv."""
    flat = [v for vs in expands for v in vs]
    options = {"resolutions": [224], "widths": [1.0], "depth_choices": sorted(set(depths)),
               "kernel_choices": sorted({k for ks in kernels for k in ks}), "expand_choices": sorted(set(flat)),
               "stages": stages, "head_channels": head, "last_channels": last, **first}
    arch = {"resolution": 224, "width": 1.0, "depths": depths, "activations": activations, "kernels": kernels,
            "expands": expands, "se": se}
    return NamedArch(f"mobilenetv3-{size}-1.0-224", "mobilenetv3", options, arch, 3, 1000, macs, params, source,
                     macs_rounding, 1, "torchvision")


_V3_SOURCE = ("structure: Howard et al. 2019 Tables 1-2 (timm's mobilenetv3 arch defs for the fractional expansions); "
              "params: torchvision MobileNet_V3_{}_Weights num_params (exact, BN γ/β and SE/classifier biases "
              "counted); MACs: {}")
_V3_LARGE = _mobilenetv3(
    "large", [[24, 2], [40, 2], [80, 2], [112, 1], [160, 2]], [2, 3, 4, 2, 3],
    ["relu", "relu", "hswish", "hswish", "hswish"], [[3, 3], [5, 5, 5], [3, 3, 3, 3], [3, 3], [5, 5, 5]],
    [[4, 3], [3, 3, 3], [6, 2.5, 2.3, 2.3], [6, 6], [6, 6, 6]], [[0, 0], [1, 1, 1], [0, 0, 0, 0], [1, 1], [1, 1, 1]],
    960, 1280, {}, 217_000_000, 1e6, 5_483_032,
    _V3_SOURCE.format("Large", "Keras applications / TF-slim MobileNetV3 table, 217 M (the paper's 219 M counts "
                               "more than conv and FC MACs; torchvision: 0.22 GFLOPS)"))
_V3_SMALL = _mobilenetv3(
    "small", [[24, 2], [40, 2], [48, 1], [96, 2]], [2, 3, 2, 3], ["relu", "hswish", "hswish", "hswish"],
    [[3, 3], [5, 5, 5], [5, 5], [5, 5, 5]], [[4.5, 3.67], [4, 6, 6], [3, 3], [6, 6, 6]],
    [[0, 0], [1, 1, 1], [1, 1], [1, 1, 1]], 576, 1024, {"first_block_stride": 2, "first_block_se": 1},
    60_000_000, 1e7, 2_542_856,
    _V3_SOURCE.format("Small", "torchvision 0.06 GFLOPS (the paper's 56 M is 56.05 M without the SE convs' "
                               "0.46 M, 56.51 M with them; the Keras table's 66 M is not this net)"))


_ZOO_CSV = Path(__file__).resolve().parents[1] / "estimators" / "data" / "mcunet_zoo.csv"


def _unit(figure: str) -> float:
    """The unit of a published figure's last digit, in millions: '6.4' → 1e5."""
    return float(Decimal(1).scaleb(Decimal(figure).as_tuple().exponent)) * 1e6


def _mcunet_zoo(name: str, row: dict[str, str]) -> NamedArch:
    """A released MCUNet / ProxylessNAS / MobileNetV2 config (``estimators.reference_models.MCUNET_ZOO``) as a
    point of the MCUNet space at width 1.0: its stages (a new one at each block without identity shortcut),
    stem, first-block and feature-mix channels as options; per-block kernels and expand ratios (mid / in)."""
    from estimators.reference_models import MCUNET_ZOO

    cfg = MCUNET_ZOO[row["model"]]
    (stem, first, *_), *blocks = cfg["blocks"]
    stages, kernels, expands = [], [], []
    for cin, cout, kernel, stride, mid, identity in blocks:
        if not identity:
            stages.append([cout, stride])
            kernels.append([]), expands.append([])
        kernels[-1].append(kernel)
        expands[-1].append(mid // cin)
    depths = [len(k) for k in kernels]
    options = {"resolutions": [cfg["resolution"]], "widths": [1.0], "depth_choices": sorted(set(depths)),
               "kernel_choices": sorted({k for ks in kernels for k in ks}),
               "expand_choices": sorted({e for es in expands for e in es}), "stages": stages,
               "stem_channels": stem, "first_block_channels": first, "head_channels": cfg["feature_mix"] or 0,
               "shortcut": "within_stage"}
    arch = {"resolution": cfg["resolution"], "width": 1.0, "depths": depths, "kernels": kernels, "expands": expands}
    return NamedArch(name, "mcunet", options, arch, 3, cfg["classes"],
                     round(float(row["macs_m"]) * 1e6), round(float(row["params_m"]) * 1e6),
                     f"config: mit-han-lab/mcunet {row['model']}_imagenet.json (estimators/reference_models.py); "
                     f"figures: {row['source']}", _unit(row["macs_m"]), _unit(row["params_m"]), "torch")


def _mcunet_zoo_points() -> dict[str, NamedArch]:
    with open(_ZOO_CSV) as f:
        rows = list(csv.DictReader(f))
    return {(r["net_id"] or r["model"]): _mcunet_zoo(r["net_id"] or r["model"], r) for r in rows}


_MLPERF = "MLPerf Tiny v0.5 reference models (mlcommons/tiny), latency_calibration.csv"

NAMED: dict[str, NamedArch] = {
    # MLPerf Tiny KWS: 49×10 MFCC → 10×4/2 conv 64 → 4 × (dw 3×3 + pw 64) → pool → FC 12.
    "mlperf-kws-dscnn": NamedArch(
        "mlperf-kws-dscnn", "dscnn",
        {"input_sizes": [[49, 10]], "first_kernels": [[10, 4]], "first_strides": [[2, 2]], "first_channel_choices": [64],
         "depth_choices": [4], "channel_choices": [64], "kernel_choices": [[3, 3]], "stride_choices": [[1, 1]],
         "activation": "relu"},
        {"input_size": [49, 10], "first_kernel": [10, 4], "first_stride": [2, 2], "first_channels": 64, "depths": [4],
         "channels": [[64] * 4], "kernels": [[[3, 3]] * 4], "strides": [[[1, 1]] * 4]},
        1, 12, 2_656_768, 22_606, _MLPERF),
    # MLPerf Tiny VWW: MobileNetV1 α = 0.25 at 96×96×3, 2 classes.
    "mlperf-vww-mobilenetv1-0.25": NamedArch(
        "mlperf-vww-mobilenetv1-0.25", "mobilenetv1",
        {"resolutions": [96], "widths": [0.25], "kernel_choices": [3], "activation": "relu"},
        {"resolution": 96, "width": 0.25, "depths": [1, 2, 2, 6, 2], "kernels": [[3] * d for d in (1, 2, 2, 6, 2)]},
        3, 2, 7_489_664, 210_852, _MLPERF),
    # ImageNet, 224×224×3, 1000 classes. The slim table's "300" MMACs for 1.0 is torchvision's "0.30 GFLOPS".
    "mobilenetv2-0.35-224": _mobilenetv2(0.35, 224, 59_000_000, 1_660_000, 1e6),
    "mobilenetv2-1.0-224": _mobilenetv2(1.0, 224, 300_000_000, 3_470_000, 1e7),
    "efficientnet-lite0": _lite("lite0", 385_000_000, 4_700_000),
    "efficientnet-lite1": _lite("lite1", 600_000_000, 5_400_000),
    "efficientnet-lite2": _lite("lite2", 860_000_000, 6_100_000),
    "efficientnet-lite3": _lite("lite3", 1_383_000_000, 8_200_000),
    "efficientnet-lite4": _lite("lite4", 2_553_000_000, 13_000_000),
    "mobilenetv3-large-1.0-224": _V3_LARGE,
    "mobilenetv3-small-1.0-224": _V3_SMALL,
    # MCUNet's model zoo (ImageNet int8 configs), by the mcunet README's net_id where it has one.
    **_mcunet_zoo_points(),
}


def _aliases() -> dict[str, str]:
    from estimators.reference_models import MCUNET_NET_IDS

    return {config: net_id for net_id, config in MCUNET_NET_IDS.items()}


#: Other names of named points: MCUNet's config names for the zoo's net_ids (mcunet-5fps → mcunet-in1).
ALIASES: dict[str, str] = _aliases()


def named_archs() -> list[str]:
    """Every named point's name (aliases aside), sorted."""
    return sorted(NAMED)


available = named_archs  # the registry-style name, as search_spaces.available()


def find(value: str) -> NamedArch | None:
    """The named point ``value`` names (a name or alias, when no file of that name exists), else None: lets
    ``arch=`` take a JSON file or a name."""
    if not value or Path(value).is_file():
        return None
    return NAMED.get(ALIASES.get(value, value))


def named_arch(name: str) -> NamedArch:
    """The named reference network ``name`` or one of its :data:`ALIASES` (see :func:`named_archs`)."""
    point = NAMED.get(ALIASES.get(name, name))
    if point is None:
        raise ValueError(f"unknown named arch {name!r}; known: {', '.join(named_archs())} "
                         f"(aliases: {', '.join(sorted(ALIASES))})")
    return point
