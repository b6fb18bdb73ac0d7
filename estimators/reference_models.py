"""IRs of published reference models (the ones timed in ``latency_calibration.csv``), built layer by layer.

Each builder returns the :class:`Graph` TFLite would run for the int8 model: batch norm folded into the
preceding conv, activations fused, Keras ``Flatten`` as a RESHAPE (its 2-element int32 shape tensor is a
constant of the file, so MLPerf Tiny's published parameter counts include it).

Sources of the architectures:

* MLPerf Tiny v0.5 reference models (mlcommons/tiny, ``benchmark/training``): KWS DS-CNN, VWW MobileNetV1
  0.25× at 96×96×3 with 2 classes, IC ResNet-8 (CIFAR-10), AD FC autoencoder (640 → 128×4 → 8 → 128×4 → 640).
* "Hello Edge" DS-CNN S/M/L (Zhang et al., 2017; ARM-software/ML-KWS-for-MCU ``model_size_info``: S 64
  channels × 4 DS layers, M 172 × 4, L 276 × 5, 10×4 first conv, 49×10 MFCC input). The MicroNets paper
  (Banbury et al., MLSys 2021, Table 4) times these with 3.55 / 18.65 / 53.6 MMACs, which the
  ML-KWS-for-MCU strides (first conv stride 2×2 for S, 2×1 for M and L; first DS layer stride 1 for S,
  2 for M and L) do not reproduce (2.66 / 9.81 / 28.3 MMACs). Every published figure is matched within 2%
  by one consistent variant — first conv stride 1, first DS layer stride 2, 'same' padding — which is what
  :func:`hello_edge_dscnn` builds (3.59 / 18.94 / 54.58 MMACs); the remaining 1–2% is the paper's counter,
  which takes the 49-row map after the stride-2 layer as 24.5 rows where TFLite runs 25 (see MicroNets below).
* MicroNet-KWS / MicroNet-AD S/M/L (MicroNets, Table 5 layers; ML-zoo's released int8 files for the op
  types): see :func:`micronet`.
* MCUNet's released ImageNet configs (mit-han-lab/mcunet ``mcunet-5fps_imagenet.json`` and
  ``mbv2-w0.3-r80_imagenet.json``): per block (in, out, kernel, stride, expand or mid channels, identity
  shortcut). The tables below restate those configs' numbers.
"""

from __future__ import annotations

from typing import Callable

from estimators.builder import GraphBuilder, symmetric_padded
from estimators.ir import Graph


# -- MLPerf Tiny --------------------------------------------------------------------------------------
def mlperf_kws_dscnn() -> Graph:
    """MLPerf Tiny KWS DS-CNN: 49×10×1 MFCC → 10×4/2 conv 64 → 4 × (dw 3×3 + pw 64) → avg pool → FC 12."""
    g = GraphBuilder("mlperf_kws_dscnn", (49, 10, 1))
    x = g.conv2d_hw(g.input, 64, (10, 4), (2, 2), activation="relu", name="conv1")
    for i in range(4):
        x = g.depthwise_conv2d(x, 3, 1, activation="relu", name=f"ds{i}/dw")
        x = g.conv2d(x, 64, 1, 1, activation="relu", name=f"ds{i}/pw")
    _, h, w, _ = g.shape(x)
    x = g.avg_pool2d(x, (h, w))
    x = g.flatten(x)
    x = g.fully_connected(x, 12)
    return g.finish(g.softmax(x))


def mlperf_vww_mobilenetv1() -> Graph:
    """MLPerf Tiny VWW: MobileNetV1 α=0.25 on 96×96×3, 2 classes."""
    g = GraphBuilder("mlperf_vww_mobilenetv1_0.25_96", (96, 96, 3))
    x = g.conv2d(g.input, 8, 3, 2, activation="relu", name="conv1")
    # (pointwise filters, depthwise stride) of MobileNetV1 at α = 0.25
    plan = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
    for i, (cout, stride) in enumerate(plan):
        x = g.depthwise_conv2d(x, 3, stride, activation="relu", name=f"ds{i}/dw")
        x = g.conv2d(x, cout, 1, 1, activation="relu", name=f"ds{i}/pw")
    _, h, w, _ = g.shape(x)
    x = g.avg_pool2d(x, (h, w))
    x = g.flatten(x)
    x = g.fully_connected(x, 2)
    return g.finish(g.softmax(x))


def mlperf_ic_resnet8() -> Graph:
    """MLPerf Tiny IC ResNet-8 (CIFAR-10): 3 residual stacks of 16, 32, 64 filters."""
    g = GraphBuilder("mlperf_ic_resnet8", (32, 32, 3))
    x = g.conv2d(g.input, 16, 3, 1, activation="relu", name="conv1")
    for i, (cout, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
        y = g.conv2d(x, cout, 3, stride, activation="relu", name=f"stack{i}/conv1")
        y = g.conv2d(y, cout, 3, 1, activation=None, name=f"stack{i}/conv2")
        if stride != 1:
            x = g.conv2d(x, cout, 1, stride, activation=None, name=f"stack{i}/shortcut")
        x = g.add(y, x, activation="relu", name=f"stack{i}/add")
    _, h, w, _ = g.shape(x)
    x = g.avg_pool2d(x, (h, w))
    x = g.flatten(x)
    x = g.fully_connected(x, 10)
    return g.finish(g.softmax(x))


def mlperf_ad_fc_autoencoder() -> Graph:
    """MLPerf Tiny AD: dense autoencoder 640 → 128 ×4 → 8 → 128 ×4 → 640."""
    g = GraphBuilder("mlperf_ad_fc_autoencoder", (640,))
    x = g.input
    for i, units in enumerate([128] * 4 + [8] + [128] * 4):
        x = g.fully_connected(x, units, activation="relu", name=f"dense{i}")
    return g.finish(g.fully_connected(x, 640, name="dense_out"))


# -- Hello Edge DS-CNN (as timed by MicroNets) -----------------------------------------------------
HELLO_EDGE_DSCNN = {"s": (64, 4), "m": (172, 4), "l": (276, 5)}  # (channels, depthwise-separable layers)


def ds_cnn_body(g: GraphBuilder, stem: int, stem_kernel: tuple[int, int], blocks: list[tuple[int, int]],
                activation: str) -> int:
    """Stride-1 'same' ``stem_kernel`` conv to ``stem`` channels, then one depthwise-separable block per
    (channels, stride) of ``blocks`` (3×3 depthwise with that stride, 1×1 pointwise to those channels, both
    'same' and followed by ``activation``), then an average pool over the whole map; returns the pooled map."""
    x = g.conv2d_hw(g.input, stem, stem_kernel, (1, 1), activation=activation, name="conv1")
    for i, (channels, stride) in enumerate(blocks):
        x = g.depthwise_conv2d(x, 3, stride, activation=activation, name=f"ds{i}/dw")
        x = g.conv2d(x, channels, 1, 1, activation=activation, name=f"ds{i}/pw")
    _, h, w, _ = g.shape(x)
    return g.avg_pool2d(x, (h, w))


def hello_edge_dscnn(size: str) -> Graph:
    """Hello Edge DS-CNN ``size`` in 's' / 'm' / 'l' (the MicroNets-matching strides; see the module doc)."""
    if size not in HELLO_EDGE_DSCNN:
        raise ValueError(f"DS-CNN size must be one of {sorted(HELLO_EDGE_DSCNN)}, got {size!r}")
    channels, layers = HELLO_EDGE_DSCNN[size]
    g = GraphBuilder(f"dscnn_{size}", (49, 10, 1))
    blocks = [(channels, 2 if i == 0 else 1) for i in range(layers)]
    x = g.flatten(ds_cnn_body(g, channels, (10, 4), blocks, "relu"))
    x = g.fully_connected(x, 12)
    return g.finish(g.softmax(x))


# -- MicroNets KWS and AD (Banbury et al., MLSys 2021, Table 5) -------------------------------------
# Per task: input (H, W, C), first-conv kernel, classes; per size: first-conv channels, then the
# depthwise-separable blocks' (output channels, stride). Table 5's AvgPool is the whole final map (25×5
# for KWS, 4×4 for AD) and its FC the classifier. Padding is 'same' throughout: 'valid' would not leave
# the 25×5 map Table 5 pools (49×10 → stride 2 → 25×5), and with 'same' our MACs equal Table 4's Mops / 2
# for AD. For KWS they are 1.5–1.9% above it, as for the DS-CNNs: the paper's counts are reproduced to
# their printed digits when the map after the stride-2 block is taken as 24.5×5 (49 / 2 unrounded), so
# its counter divides sizes by strides without rounding; TFLite runs 25×5 (what we count).
# The layer types follow ARM-software/ML-zoo's int8 files of these models (their definition.yaml lists
# AVERAGE_POOL_2D, CONV_2D, DEPTHWISE_CONV_2D, RELU6, RESHAPE): ReLU6 activations, and the classifier
# is a 1×1 CONV_2D on the pooled 1×1 map plus a RESHAPE (no FULLY_CONNECTED, no SOFTMAX).
MICRONET_TASKS = {"kws": ((49, 10, 1), (10, 4), 12), "ad": ((32, 32, 1), (3, 3), 4)}
MICRONETS = {
    ("kws", "s"): (84, [(112, 2), (84, 1), (84, 1), (84, 1), (196, 1)]),
    ("kws", "m"): (140, [(140, 2), (140, 1), (140, 1), (112, 1), (196, 1)]),
    ("kws", "l"): (276, [(248, 2), (276, 1), (276, 1), (248, 1), (248, 1), (248, 1), (248, 1)]),
    ("ad", "s"): (72, [(164, 2), (220, 1), (276, 2), (276, 2)]),
    ("ad", "m"): (192, [(276, 2), (276, 1), (276, 1), (276, 2), (276, 2)]),
    ("ad", "l"): (276, [(248, 2), (276, 1), (276, 1), (248, 2), (248, 2)]),
}


def micronet(task: str, size: str) -> Graph:
    """MicroNet-``task``-``size`` (task 'kws' or 'ad', size 's' / 'm' / 'l') as Table 5 lays it out."""
    if (task, size) not in MICRONETS:
        raise ValueError(f"MicroNet (task, size) must be one of {sorted(MICRONETS)}, got {(task, size)!r}")
    input_shape, stem_kernel, classes = MICRONET_TASKS[task]
    stem, blocks = MICRONETS[task, size]
    g = GraphBuilder(f"micronet_{task}_{size}", input_shape)
    x = ds_cnn_body(g, stem, stem_kernel, blocks, "relu6")
    x = g.conv2d(x, classes, 1, 1, name="classifier")
    return g.finish(g.reshape(x, (1, classes)))


# -- MCUNet released ImageNet configs ---------------------------------------------------------------
# (in, out, kernel, stride, mid channels, identity shortcut); mid == in means no expand conv.
MCUNET_5FPS = dict(
    resolution=96, stem=16, feature_mix=None, classes=1000,
    blocks=[(16, 8, 3, 1, 16, False), (8, 16, 3, 2, 32, False), (16, 16, 3, 1, 48, True),
            (16, 24, 7, 2, 48, False), (24, 24, 3, 1, 120, True), (24, 40, 3, 2, 120, False),
            (40, 40, 7, 1, 160, True), (40, 48, 5, 1, 160, False), (48, 48, 3, 1, 144, True),
            (48, 48, 3, 1, 192, True), (48, 96, 7, 2, 240, False), (96, 96, 5, 1, 384, True),
            (96, 96, 5, 1, 384, True), (96, 160, 3, 1, 576, False)],
)
MBV2_W03_R80 = dict(
    resolution=80, stem=16, feature_mix=384, classes=1000,
    blocks=[(16, 8, 3, 1, 16, False), (8, 8, 3, 2, 48, False), (8, 8, 3, 1, 48, True),
            (8, 16, 3, 2, 48, False), (16, 16, 3, 1, 96, True), (16, 16, 3, 1, 96, True),
            (16, 24, 3, 2, 96, False), (24, 24, 3, 1, 144, True), (24, 24, 3, 1, 144, True),
            (24, 24, 3, 1, 144, True), (24, 32, 3, 1, 144, False), (32, 32, 3, 1, 192, True),
            (32, 32, 3, 1, 192, True), (32, 48, 3, 2, 192, False), (48, 48, 3, 1, 288, True),
            (48, 48, 3, 1, 288, True), (48, 96, 3, 1, 288, False)],
)


def mcunet_config(name: str, cfg: dict, torch_padding: bool = True) -> Graph:
    """A ProxylessNAS-style config: 3×3/2 stem, MBConv blocks, optional 1×1 feature mix, pool, classifier.

    The int8 graph of the released network: its PyTorch layers pad k//2 on every side, so a strided layer
    whose TensorFlow 'same' padding differs (even input sizes) reads an explicit PAD (MCUNet's TF export
    pads explicitly too; TinyEngine folds the PAD into the conv). Pooling is a MEAN to N×C and the
    classifier is quantized per output channel, as our export writes them: this is the graph the MCUNet
    space builds for the same config (``search_spaces.named``), so a named network has one graph.
    ``torch_padding=False``: TensorFlow's 'same' padding everywhere (a net defined in TensorFlow)."""
    g = GraphBuilder(name, (cfg["resolution"], cfg["resolution"], 3))

    def padded(layer, x, k, s, *args, name, **kwargs):
        if torch_padding:
            return symmetric_padded(g, layer, x, k, s, *args, name=name, **kwargs)
        return layer(x, *args, kernel=k, stride=s, name=name, **kwargs)

    x = padded(g.conv2d, g.input, 3, 2, cfg["stem"], activation="relu6", name="stem")
    for i, (cin, cout, k, s, mid, identity) in enumerate(cfg["blocks"]):
        inp = x
        if mid != cin:
            x = g.conv2d(x, mid, 1, 1, activation="relu6", name=f"block{i}/expand")
        x = padded(g.depthwise_conv2d, x, k, s, activation="relu6", name=f"block{i}/dw")
        x = g.conv2d(x, cout, 1, 1, activation=None, name=f"block{i}/project")
        if identity:
            x = g.add(x, inp, name=f"block{i}/add")
    if cfg["feature_mix"]:
        x = g.conv2d(x, cfg["feature_mix"], 1, 1, activation="relu6", name="feature_mix")
    x = g.global_avg_pool(x, keep_dims=False)
    return g.finish(g.fully_connected(x, cfg["classes"], per_channel=True, name="classifier"))


#: Builders by the model key of ``latency_calibration.csv`` (its ``model`` column up to the first space).
REFERENCE_MODELS: dict[str, Callable[[], Graph]] = {
    "mlperf_kws_dscnn": mlperf_kws_dscnn,
    "mlperf_vww_mobilenetv1_0.25_96": mlperf_vww_mobilenetv1,
    "mlperf_ic_resnet8": mlperf_ic_resnet8,
    "mlperf_ad_fc_autoencoder": mlperf_ad_fc_autoencoder,
    "fc_autoencoder": mlperf_ad_fc_autoencoder,  # MicroNets' AD baseline is the MLPerf Tiny autoencoder
    "dscnn_s": lambda: hello_edge_dscnn("s"),
    "dscnn_m": lambda: hello_edge_dscnn("m"),
    "dscnn_l": lambda: hello_edge_dscnn("l"),
    **{f"micronet_{task}_{size}": (lambda t=task, s=size: micronet(t, s)) for task, size in MICRONETS},
    "mcunet-5fps": lambda: mcunet_config("mcunet-5fps_imagenet", MCUNET_5FPS),
    "mbv2-w0.3-r80": lambda: mcunet_config("mbv2-w0.3-r80_imagenet", MBV2_W03_R80),
}


def model_key(csv_model: str) -> str:
    """The registry key of a ``latency_calibration.csv`` model cell, e.g. 'dscnn_s (Hello Edge DS-CNN-S)'."""
    return csv_model.split(" ", 1)[0]


def reference_model(name: str) -> Graph:
    """The IR of reference model ``name`` (a registry key or a full csv model cell)."""
    key = model_key(name)
    if key not in REFERENCE_MODELS:
        raise ValueError(f"unknown reference model {name!r}; known: {', '.join(REFERENCE_MODELS)}")
    return REFERENCE_MODELS[key]()


# -- MCUNet model zoo (appended) ----------------------------------------------------------------------
# The remaining int8 ImageNet configs released with MCUNet (mit-han-lab/mcunet at commit 8326da6,
# ``assets/configs/*_imagenet.json``; the same files in mit-han-lab/tinyml ``mcunet/assets/configs``),
# restated in the (in, out, kernel, stride, mid, identity) form above. ``ZeroLayer`` blocks (a skipped
# block: identity shortcut only) are left out; without ``mid_channels`` mid is round(in · expand_ratio).
# Their published statistics are in ``estimators/data/mcunet_zoo.csv``. No VWW or KWS config was released.
MCUNET_10FPS = dict(
    resolution=48, stem=24, feature_mix=None, classes=1000,
    blocks=[(24, 16, 3, 1, 24, False), (16, 16, 5, 2, 64, False), (16, 16, 3, 1, 48, True),
            (16, 16, 3, 1, 64, True), (16, 24, 7, 2, 80, False), (24, 24, 5, 1, 96, True),
            (24, 24, 5, 1, 120, True), (24, 48, 7, 2, 120, False), (48, 48, 5, 1, 192, True),
            (48, 56, 3, 1, 240, False), (56, 56, 5, 1, 224, True), (56, 56, 3, 1, 280, True),
            (56, 112, 3, 2, 336, False), (112, 112, 5, 1, 448, True), (112, 192, 3, 1, 672, False)],
)
MCUNET_256KB_1MB = dict(
    resolution=160, stem=16, feature_mix=None, classes=1000,
    blocks=[(16, 8, 3, 1, 16, False), (8, 16, 5, 2, 24, False), (16, 16, 7, 1, 96, True),
            (16, 16, 3, 1, 80, True), (16, 16, 5, 1, 80, True), (16, 24, 3, 2, 80, False),
            (24, 24, 7, 1, 144, True), (24, 24, 5, 1, 144, True), (24, 40, 7, 2, 96, False),
            (40, 40, 5, 1, 200, True), (40, 48, 3, 1, 200, False), (48, 48, 5, 1, 240, True),
            (48, 48, 3, 1, 192, True), (48, 96, 5, 2, 288, False), (96, 96, 5, 1, 384, True),
            (96, 96, 5, 1, 288, True), (96, 96, 3, 1, 384, True), (96, 160, 5, 1, 480, False)],
)
MCUNET_320KB_1MB = dict(
    resolution=176, stem=16, feature_mix=None, classes=1000,
    blocks=[(16, 8, 3, 1, 16, False), (8, 16, 7, 2, 24, False), (16, 16, 3, 1, 80, True),
            (16, 16, 7, 1, 80, True), (16, 16, 5, 1, 64, True), (16, 24, 5, 2, 80, False),
            (24, 24, 5, 1, 120, True), (24, 24, 5, 1, 120, True), (24, 40, 3, 2, 120, False),
            (40, 40, 7, 1, 240, True), (40, 40, 5, 1, 160, True), (40, 48, 5, 1, 200, False),
            (48, 48, 7, 1, 240, True), (48, 48, 3, 1, 240, True), (48, 96, 3, 2, 288, False),
            (96, 96, 7, 1, 480, True), (96, 96, 3, 1, 384, True), (96, 160, 7, 1, 480, False)],
)
MCUNET_512KB_2MB = dict(
    resolution=160, stem=32, feature_mix=None, classes=1000,
    blocks=[(32, 16, 3, 1, 32, False), (16, 24, 7, 2, 48, False), (24, 24, 3, 1, 120, True),
            (24, 24, 5, 1, 96, True), (24, 40, 7, 2, 120, False), (40, 40, 3, 1, 160, True),
            (40, 40, 7, 1, 160, True), (40, 80, 7, 2, 120, False), (80, 80, 3, 1, 240, True),
            (80, 80, 7, 1, 240, True), (80, 96, 3, 1, 320, False), (96, 96, 5, 1, 288, True),
            (96, 96, 5, 1, 288, True), (96, 192, 7, 2, 384, False), (192, 192, 7, 1, 576, True),
            (192, 192, 5, 1, 576, True), (192, 320, 5, 1, 768, False)],
)
MBV2_W035_R144 = dict(
    resolution=144, stem=16, feature_mix=448, classes=1000,
    blocks=[(16, 8, 3, 1, 16, False), (8, 8, 3, 2, 48, False), (8, 8, 3, 1, 48, True),
            (8, 16, 3, 2, 48, False), (16, 16, 3, 1, 96, True), (16, 16, 3, 1, 96, True),
            (16, 24, 3, 2, 96, False), (24, 24, 3, 1, 144, True), (24, 24, 3, 1, 144, True),
            (24, 24, 3, 1, 144, True), (24, 32, 3, 1, 144, False), (32, 32, 3, 1, 192, True),
            (32, 32, 3, 1, 192, True), (32, 56, 3, 2, 192, False), (56, 56, 3, 1, 336, True),
            (56, 56, 3, 1, 336, True), (56, 112, 3, 1, 336, False)],
)
PROXYLESS_W025_R112 = dict(
    resolution=112, stem=8, feature_mix=320, classes=1000,
    blocks=[(8, 8, 3, 1, 8, False), (8, 8, 5, 2, 24, False), (8, 8, 3, 1, 24, True), (8, 16, 7, 2, 24, False),
            (16, 16, 3, 1, 48, True), (16, 16, 5, 1, 48, True), (16, 16, 5, 1, 48, True),
            (16, 24, 7, 2, 96, False), (24, 24, 5, 1, 72, True), (24, 24, 5, 1, 72, True),
            (24, 24, 5, 1, 72, True), (24, 24, 5, 1, 144, False), (24, 24, 5, 1, 72, True),
            (24, 24, 5, 1, 72, True), (24, 24, 5, 1, 72, True), (24, 48, 7, 2, 144, False),
            (48, 48, 7, 1, 288, True), (48, 48, 7, 1, 144, True), (48, 48, 7, 1, 144, True),
            (48, 80, 7, 1, 288, False)],
)
PROXYLESS_W03_R176 = dict(
    resolution=176, stem=16, feature_mix=384, classes=1000,
    blocks=[(16, 8, 3, 1, 16, False), (8, 16, 5, 2, 24, False), (16, 16, 3, 1, 48, True),
            (16, 16, 7, 2, 48, False), (16, 16, 3, 1, 48, True), (16, 16, 5, 1, 48, True),
            (16, 16, 5, 1, 48, True), (16, 24, 7, 2, 96, False), (24, 24, 5, 1, 72, True),
            (24, 24, 5, 1, 72, True), (24, 24, 5, 1, 72, True), (24, 32, 5, 1, 144, False),
            (32, 32, 5, 1, 96, True), (32, 32, 5, 1, 96, True), (32, 32, 5, 1, 96, True),
            (32, 64, 7, 2, 192, False), (64, 64, 7, 1, 384, True), (64, 64, 7, 1, 192, True),
            (64, 64, 7, 1, 192, True), (64, 96, 7, 1, 384, False)],
)

#: Zoo builders by config name, and by the model-zoo ``net_id`` the current mcunet README uses.
MCUNET_ZOO: dict[str, dict] = {
    "mcunet-10fps": MCUNET_10FPS, "mcunet-5fps": MCUNET_5FPS, "mcunet-256kb-1mb": MCUNET_256KB_1MB,
    "mcunet-320kb-1mb": MCUNET_320KB_1MB, "mcunet-512kb-2mb": MCUNET_512KB_2MB,
    "mbv2-w0.3-r80": MBV2_W03_R80, "mbv2-w0.35-r144": MBV2_W035_R144,
    "proxyless-w0.25-r112": PROXYLESS_W025_R112, "proxyless-w0.3-r176": PROXYLESS_W03_R176,
}
MCUNET_NET_IDS = {
    "mcunet-in0": "mcunet-10fps", "mcunet-in1": "mcunet-5fps", "mcunet-in2": "mcunet-256kb-1mb",
    "mcunet-in3": "mcunet-320kb-1mb", "mcunet-in4": "mcunet-512kb-2mb",
    "mbv2-w0.35": "mbv2-w0.35-r144", "proxyless-w0.3": "proxyless-w0.3-r176",
}


def _zoo_builder(key: str) -> Callable[[], Graph]:
    return lambda: mcunet_config(f"{key}_imagenet", MCUNET_ZOO[key])


REFERENCE_MODELS.update({key: _zoo_builder(key) for key in MCUNET_ZOO if key not in REFERENCE_MODELS})
REFERENCE_MODELS.update({net_id: _zoo_builder(key) for net_id, key in MCUNET_NET_IDS.items()})


# -- MobileNetV2 (appended) -------------------------------------------------------------------------
#: MobileNetV2's bottleneck table (Sandler et al., CVPR 2018, Table 2): expansion t, channels c, repeats n,
#: first stride s; 3×3 stem of 32 channels, 1×1 feature mix of 1280, 1000 classes (w1.0, r224: 300 M MACs).
MOBILENETV2_TABLE = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                     (6, 320, 1, 1))


def mobilenetv2(resolution: int = 224) -> Graph:
    """MobileNetV2 w1.0 at ``resolution`` in the MCUNet config form (identity shortcut where in = out, s = 1),
    as the TensorFlow (slim) original defines it: 'same' padding, no PAD ops."""
    blocks, cin = [], 32
    for t, c, n, s in MOBILENETV2_TABLE:
        for i in range(n):
            blocks.append((cin, c, 3, s if i == 0 else 1, cin * t, i > 0 and cin == c))
            cin = c
    return mcunet_config(f"mbv2-w1.0-r{resolution}",
                         dict(resolution=resolution, stem=32, feature_mix=1280, classes=1000, blocks=blocks),
                         torch_padding=False)


REFERENCE_MODELS["mbv2-w1.0-r224"] = mobilenetv2
