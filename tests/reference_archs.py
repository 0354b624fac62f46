"""Small models of the published reference architectures, trained on data that ships offline.

The MLPerf Tiny reference models (ResNet-8, DS-CNN keyword spotting, MobileNetV1-0.25
visual wake words, the FC autoencoder for anomaly detection, a streaming wake-word
DS-CNN) and TFLite Micro's hello_world, each rebuilt with the same layer kinds and
input shapes (narrower where width only costs test time) and trained for a few
epochs on scikit-learn's digits reshaped to the model's input. They are what a user
brings who did not write edgebuild's own examples: every claim a build makes must
hold on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReferenceData:
    """Training and held-out samples in the model's input shape; y is None for non-classifiers."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray | None


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # (N, 8, 8) in [0, 1]
    order = np.random.default_rng(0).permutation(len(images))
    return images[order], digits.target[order].astype(np.int64)


def _resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of (N, h, w) to (N, height, width): deterministic and dependency-free."""
    rows = np.arange(height) * images.shape[1] // height
    cols = np.arange(width) * images.shape[2] // width
    return images[:, rows][:, :, cols]


def _split(x: np.ndarray, y: np.ndarray | None, n_test: int = 300) -> ReferenceData:
    if y is None:
        return ReferenceData(x[:-n_test], x[:-n_test], x[-n_test:], None)
    return ReferenceData(x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:])


# ---------------------------------------------------------------------------------------------
# data in each model's input shape


def image_data(size: int = 32, channels: int = 3, binary: bool = False) -> ReferenceData:
    """Digits as colour images (CIFAR-like 32x32x3, or VWW-like with two classes: 'is it a zero')."""
    images, labels = _digits()
    x = np.repeat(_resize(images, size, size)[..., None], channels, axis=-1)
    tint = np.linspace(0.6, 1.0, channels, dtype=np.float32)  # channels differ, as in real images
    y = (labels == 0).astype(np.int64) if binary else labels
    return _split(x * tint, y)


def spectrogram_data(frames: int = 49, bins: int = 10) -> ReferenceData:
    """Digits stretched to an MFCC-like (frames, bins, 1) patch, centred like real MFCCs (mean 0, ±~20)."""
    images, labels = _digits()
    x = (_resize(images, frames, bins)[..., None] - 0.3) * 40.0
    return _split(x, labels)


def streaming_data(frames: int = 30, bins: int = 40) -> ReferenceData:
    """Digits as a (frames, 1, bins) feature window: the streaming wake-word input layout."""
    images, labels = _digits()
    x = _resize(images, frames, bins)[:, :, None, :]
    return _split(x, (labels == 1).astype(np.int64))


def machine_sound_data(features: int = 640) -> ReferenceData:
    """Ten frames of 64 digit pixels in one 640-vector: the anomaly-detection autoencoder's input."""
    images, _ = _digits()
    flat = images.reshape(len(images), 64)
    frames = [np.roll(flat, shift, axis=0) for shift in range(features // 64)]
    return _split(np.concatenate(frames, axis=1), None)


def sine_data(n: int = 1000) -> ReferenceData:
    """hello_world: x in [0, 2π), y = sin(x) with a little noise (a regression, one output)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 2 * np.pi, size=(n, 1)).astype(np.float32)
    y = (np.sin(x) + 0.05 * rng.standard_normal(x.shape)).astype(np.float32)
    return ReferenceData(x[:-200], y[:-200], x[-200:], None)


# ---------------------------------------------------------------------------------------------
# the architectures (tf_keras or Keras 3 modules passed as `keras`)


def resnet8(keras: Any, classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)) -> Any:
    """MLPerf Tiny image classification: CIFAR ResNet-8 (three residual stacks, 1x1 conv shortcuts)."""
    layers = keras.layers
    inputs = keras.Input(shape=(32, 32, 3))
    x = layers.Conv2D(widths[0], 3, padding="same")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    for stack, filters in enumerate(widths):
        strides = 1 if stack == 0 else 2
        y = layers.Conv2D(filters, 3, strides=strides, padding="same")(x)
        y = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(y))
        y = layers.BatchNormalization(momentum=0.9)(layers.Conv2D(filters, 3, padding="same")(y))
        if stack > 0:
            x = layers.Conv2D(filters, 1, strides=strides, padding="same")(x)
        x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.AveragePooling2D(pool_size=x.shape[1])(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def ds_cnn(keras: Any, classes: int = 10, filters: int = 32, blocks: int = 4) -> Any:
    """MLPerf Tiny keyword spotting: DS-CNN on 49x10 MFCCs (10x4 stride-2 conv, depthwise-separable blocks)."""
    layers = keras.layers
    inputs = keras.Input(shape=(49, 10, 1))
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    for _ in range(blocks):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    x = layers.AveragePooling2D(pool_size=(x.shape[1], x.shape[2]))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def mobilenet_v1(keras: Any, size: int = 48, alpha: float = 0.25, classes: int = 2) -> Any:
    """MLPerf Tiny visual wake words: MobileNetV1 alpha 0.25 (here on a smaller image; same layer kinds)."""
    layers = keras.layers

    def block(x: Any, filters: int, strides: int) -> Any:
        x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.ReLU(6.0)(layers.BatchNormalization(momentum=0.9)(x))
        x = layers.Conv2D(int(filters * alpha), 1, use_bias=False)(x)
        return layers.ReLU(6.0)(layers.BatchNormalization(momentum=0.9)(x))

    inputs = keras.Input(shape=(size, size, 3))
    x = layers.Conv2D(int(32 * alpha), 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.ReLU(6.0)(layers.BatchNormalization(momentum=0.9)(x))
    for filters, strides in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (1024, 2)):
        x = block(x, filters, strides)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def fc_autoencoder(keras: Any, features: int = 640, hidden: int = 128, bottleneck: int = 8) -> Any:
    """MLPerf Tiny anomaly detection: Dense-BN-ReLU encoder/decoder, 640 in, 640 out (a reconstruction)."""
    layers = keras.layers
    inputs = keras.Input(shape=(features,))
    x = inputs
    for units in (hidden, hidden, hidden, hidden, bottleneck, hidden, hidden, hidden, hidden):
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(layers.Dense(units)(x)))
    outputs = layers.Dense(features)(x)
    return keras.Model(inputs, outputs)


def streaming_ds_cnn(keras: Any, classes: int = 2, filters: int = 32) -> Any:
    """Streaming wake word: DS-CNN over a (30, 1, 40) window with (3, 1) kernels, BN, Dense head."""
    layers = keras.layers
    inputs = keras.Input(shape=(30, 1, 40))
    x = layers.Conv2D(filters, (5, 1), strides=(2, 1), use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    for _ in range(2):
        x = layers.DepthwiseConv2D((3, 1), use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def hello_world(keras: Any) -> Any:
    """TFLite Micro's hello_world: a 1 → 16 → 16 → 1 sine regressor, FULLY_CONNECTED only."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(1,)),
            layers.Dense(16, activation="relu"),
            layers.Dense(16, activation="relu"),
            layers.Dense(1),
        ]
    )


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[Any], Any]
    data: Callable[[], ReferenceData]
    loss: str  # "classify" or "regress"
    epochs: int


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("resnet8", resnet8, image_data, "classify", 4),
        Architecture("ds_cnn", ds_cnn, spectrogram_data, "classify", 6),
        Architecture("vww_mobilenet", mobilenet_v1, lambda: image_data(48, 3, binary=True), "classify", 4),
        Architecture("fc_autoencoder", fc_autoencoder, machine_sound_data, "regress", 8),
        Architecture("streaming_kws", streaming_ds_cnn, streaming_data, "classify", 5),
        Architecture("hello_world", hello_world, sine_data, "regress", 60),
    )
}


def train(keras: Any, arch: Architecture, seed: int = 0) -> tuple[Any, ReferenceData]:
    """Build and train one architecture; returns the model and its data."""
    keras.utils.set_random_seed(seed)
    data = arch.data()
    model = arch.build(keras)
    if arch.loss == "classify":
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
    else:
        model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="mse")
    model.fit(data.train_x, data.train_y, epochs=arch.epochs, batch_size=32, verbose=0)
    return model, data
