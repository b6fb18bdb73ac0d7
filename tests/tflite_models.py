"""Test helper: int8 .tflite fixtures built with TF/Keras and TFLiteConverter (full-int8, int8 I/O).

The four MLPerf Tiny reference models (DS-CNN KWS, MobileNetV1-0.25 VWW, ResNet-8 CIFAR-10, FC
autoencoder) follow the architectures of the MLPerf Tiny reference training scripts; weights are Keras'
initialisers and calibration data is random-normal (memory does not depend on the values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np


def _keras():
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf, tf.keras.layers


# He initialisation keeps activations from vanishing through the ReLU stacks (a collapsed activation
# scale makes TFLM abort while preparing the classifier).
HE = {"kernel_initializer": "he_normal"}


def _dw_init():
    """He initialisation for a 3×3 depthwise kernel (Keras counts every channel in its fan-in)."""
    tf, _ = _keras()
    return {"depthwise_initializer": tf.keras.initializers.RandomNormal(stddev=(2 / 9) ** 0.5)}


def ds_cnn_kws():
    """DS-CNN (small) for keyword spotting: 49×10×1 MFCC input, 64 filters, 4 DS blocks, 12 classes."""
    tf, L = _keras()
    x = inp = tf.keras.Input((49, 10, 1), batch_size=1)
    x = L.Conv2D(64, (10, 4), strides=(2, 2), padding="same", use_bias=False, **HE)(x)
    x = L.Activation("relu")(L.BatchNormalization()(x))
    for _ in range(4):
        x = L.DepthwiseConv2D((3, 3), padding="same", use_bias=False, **_dw_init())(x)
        x = L.Activation("relu")(L.BatchNormalization()(x))
        x = L.Conv2D(64, (1, 1), padding="same", use_bias=False, **HE)(x)
        x = L.Activation("relu")(L.BatchNormalization()(x))
    x = L.AveragePooling2D(pool_size=(25, 5))(x)
    x = L.Reshape((x.shape[-1],))(x)
    x = L.Dense(12, activation="softmax")(x)
    return tf.keras.Model(inp, x, name="ds_cnn_kws")


def mobilenet_v1_vww():
    """MobileNetV1 ×0.25 for Visual Wake Words: 96×96×3 input, 2 classes."""
    tf, L = _keras()

    def conv_bn(x, filters, kernel, strides):
        x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, **HE)(x)
        return L.Activation("relu")(L.BatchNormalization()(x))

    def dw_pw(x, filters, strides):
        x = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, **_dw_init())(x)
        x = L.Activation("relu")(L.BatchNormalization()(x))
        return conv_bn(x, filters, 1, 1)

    x = inp = tf.keras.Input((96, 96, 3), batch_size=1)
    x = conv_bn(x, 8, 3, 2)
    for filters, strides in [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1),
                             (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)]:
        x = dw_pw(x, filters, strides)
    x = L.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = L.Reshape((x.shape[-1],))(x)
    x = L.Dense(2, activation="softmax")(x)
    return tf.keras.Model(inp, x, name="mobilenet_v1_vww")


def resnet8_cifar():
    """ResNet-8 for CIFAR-10: 32×32×3 input, three stacks (16, 32, 64 filters), 10 classes."""
    tf, L = _keras()

    def stack(x, filters, strides):
        y = L.Conv2D(filters, 3, strides=strides, padding="same", **HE)(x)
        y = L.Activation("relu")(L.BatchNormalization()(y))
        y = L.Conv2D(filters, 3, padding="same", **HE)(y)
        y = L.BatchNormalization()(y)
        if strides > 1:
            x = L.Conv2D(filters, 1, strides=strides, padding="same", **HE)(x)
        return L.Activation("relu")(L.Add()([x, y]))

    x = inp = tf.keras.Input((32, 32, 3), batch_size=1)
    x = L.Conv2D(16, 3, padding="same", **HE)(x)
    x = L.Activation("relu")(L.BatchNormalization()(x))
    x = stack(x, 16, 1)
    x = stack(x, 32, 2)
    x = stack(x, 64, 2)
    x = L.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = L.Reshape((x.shape[-1],))(x)
    x = L.Dense(10, activation="softmax")(x)
    return tf.keras.Model(inp, x, name="resnet8_cifar")


def fc_autoencoder():
    """Deep FC autoencoder for anomaly detection: 640 → 128×4 → 8 → 128×4 → 640."""
    tf, L = _keras()
    x = inp = tf.keras.Input((640,), batch_size=1)
    for units in [128, 128, 128, 128, 8, 128, 128, 128, 128]:
        x = L.Dense(units, **HE)(x)
        x = L.Activation("relu")(L.BatchNormalization()(x))
    x = L.Dense(640)(x)
    return tf.keras.Model(inp, x, name="fc_autoencoder")


MLPERF_TINY: dict[str, Callable] = {
    "kws": ds_cnn_kws,
    "vww": mobilenet_v1_vww,
    "ic": resnet8_cifar,
    "ad": fc_autoencoder,
}


def convert_int8(model, path: str | Path, samples: int = 16, seed: int = 0, per_channel_dense: bool = True) -> Path:
    """Full-int8 TFLite (int8 input and output) of a Keras ``model``, calibrated on random-normal data;
    ``per_channel_dense=False``: FULLY_CONNECTED weights with one scale per tensor (the converter's older default)."""
    tf, _ = _keras()
    rng = np.random.default_rng(seed)
    shape = tuple(model.inputs[0].shape[1:])

    def data():
        for _ in range(samples):
            yield [rng.standard_normal((1, *shape)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = data
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    conv._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel_dense
    path = Path(path)
    path.write_bytes(conv.convert())
    return path


def build_mlperf_tiny(out_dir: str | Path, names=tuple(MLPERF_TINY)) -> dict[str, Path]:
    """Write ``<name>.tflite`` for each MLPerf Tiny reference model into ``out_dir`` (reused if present)."""
    tf, _ = _keras()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        path = out / f"{name}.tflite"
        if not path.is_file():
            tf.keras.utils.set_random_seed(0)
            convert_int8(MLPERF_TINY[name](), path)
        paths[name] = path
    return paths


if __name__ == "__main__":
    import sys

    for name, p in build_mlperf_tiny(sys.argv[1] if len(sys.argv) > 1 else "mlperf_tiny").items():
        print(name, p, p.stat().st_size)
