"""Small digit classifiers trained on scikit-learn's bundled digits (no network needed).

Shared by the demo (`make demo`) and the test fixtures so both build the same
models. Digits are 8x8 in 0..16; we upsample them to 32x32x1 in [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np


def load_digits_32(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as float32 (N, 32, 32, 1) in [0, 1] and int64 labels, shuffled by seed."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    x = np.kron(images, np.ones((4, 4), dtype=np.float32))[..., None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    return x[order], y[order]


def build_cnn(keras: Any) -> Any:
    """A Sequential 2-conv CNN: the typical microcontroller-sized model."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(32, 32, 1)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(10),
            layers.Softmax(),
        ]
    )


def _conv_bn(layers: Any) -> Any:
    """Conv (no bias) + BatchNorm (+ ReLU6): the MobileNet building block."""

    def conv_bn(x: Any, filters: int, kernel: int, strides: int = 1, relu: bool = True) -> Any:
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)  # 0.9: BN statistics keep up in few-epoch training
        return layers.ReLU(6.0)(x) if relu else x

    return conv_bn


def _depthwise_bn(layers: Any) -> Any:
    """Depthwise 3x3 + BatchNorm + ReLU6."""

    def depthwise_bn(x: Any, strides: int = 1) -> Any:
        x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU(6.0)(x)

    return depthwise_bn


def build_residual(keras: Any) -> Any:
    """A functional model with BatchNorm, depthwise convs and a residual Add (MobileNet-like)."""
    layers = keras.layers
    conv_bn, depthwise_bn = _conv_bn(layers), _depthwise_bn(layers)
    inputs = keras.Input(shape=(32, 32, 1))
    x = conv_bn(inputs, 16, 3, strides=2)  # 16x16x16
    shortcut = x
    x = conv_bn(depthwise_bn(x), 16, 1, relu=False)
    x = layers.Add()([shortcut, x])
    x = conv_bn(depthwise_bn(x, strides=2), 32, 1)  # 8x8x32
    x = conv_bn(depthwise_bn(x, strides=2), 64, 1)  # 4x4x64
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def build_residual_wide(keras: Any, size: int = 64, widths: tuple[int, ...] = (32, 64, 128), blocks: int = 1) -> Any:
    """A wider, larger-input sibling of `build_residual` (same layer kinds), for latency measurements.

    Input size x size x 1 (digits upsampled); a stride-2 stem conv to widths[0], then per stage a stride-2
    depthwise + 1x1 conv to the stage width (not for the first stage) followed by `blocks` residual blocks
    (depthwise 3x3 + 1x1 conv, Add). At 64x64 with (32, 64, 128): ~5.1 M MACs, enough that arithmetic, not
    per-op overhead, dominates an int8 invoke().
    """
    layers = keras.layers
    conv_bn, depthwise_bn = _conv_bn(layers), _depthwise_bn(layers)
    inputs = keras.Input(shape=(size, size, 1))
    x = conv_bn(inputs, widths[0], 3, strides=2)
    for stage, width in enumerate(widths):
        if stage:
            x = conv_bn(depthwise_bn(x, strides=2), width, 1)
        for _ in range(blocks):
            x = layers.Add()([x, conv_bn(depthwise_bn(x), width, 1, relu=False)])
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def train(model: Any, x: np.ndarray, y: np.ndarray, epochs: int = 4, seed: int = 0) -> Any:
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, shuffle=False)
    return model


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float((probabilities.argmax(axis=-1) == labels).mean())
