"""Small multi-input and multi-output digits models (issue 16), trained in seconds on scikit-learn's digits.

- `two_input`: an image (32x32x1, in [0, 1]) plus a 10-value side vector `hint` (a noisy one-hot of the
  label scaled to [0, 4], right 60% of the time): two inputs with very different ranges, so the int8 input
  scales show which array calibrated which input. Keras lists `image` first; by name `hint` sorts first.
- `detection`: one image in, two outputs of different shapes: `scores` (softmax over the 10 classes) and
  `box` (4 values in [0, 1]: the bounding box of the ink, ymin, xmin, ymax, xmax).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

HINT_SCALE = 4.0


@dataclass(frozen=True)
class MultiIOData:
    image: np.ndarray
    hint: np.ndarray
    box: np.ndarray
    y: np.ndarray
    train: slice
    test: slice


def make_data(seed: int = 0) -> MultiIOData:
    import digits

    x, y = digits.load_digits_32(seed=seed)
    rng = np.random.default_rng(seed)
    hinted = np.where(rng.random(len(y)) < 0.6, y, rng.integers(0, 10, len(y)))
    hint = np.eye(10, dtype=np.float32)[hinted] * HINT_SCALE + rng.random((len(y), 10), dtype=np.float32) * 0.5
    return MultiIOData(x, hint.astype(np.float32), ink_boxes(x), y, slice(0, 1200), slice(1200, None))


def ink_boxes(x: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """(N, 4) boxes of the pixels above `threshold`, normalized to [0, 1]: ymin, xmin, ymax, xmax."""
    ink = x[..., 0] > threshold
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    size = x.shape[1]

    def span(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = mask.argmax(axis=1)
        last = size - 1 - mask[:, ::-1].argmax(axis=1)
        return first / (size - 1), last / (size - 1)

    y0, y1 = span(rows)
    x0, x1 = span(cols)
    return np.stack([y0, x0, y1, x1], axis=1).astype(np.float32)


def _image_branch(layers: Any, image: Any) -> Any:
    h = layers.Conv2D(8, 3, activation="relu")(image)
    h = layers.MaxPooling2D()(h)
    h = layers.Conv2D(16, 3, activation="relu")(h)
    h = layers.MaxPooling2D()(h)
    return layers.Flatten()(h)


def train_two_input(data: MultiIOData, epochs: int = 4) -> Any:
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    image = keras.Input((32, 32, 1), name="image")
    hint = keras.Input((10,), name="hint")
    side = layers.Dense(16, activation="relu")(hint)
    h = layers.Concatenate()([layers.Dense(32, activation="relu")(_image_branch(layers, image)), side])
    out = layers.Softmax()(layers.Dense(10)(h))
    model = keras.Model([image, hint], out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    t = data.train
    model.fit([data.image[t], data.hint[t]], data.y[t], epochs=epochs, batch_size=32, verbose=0, shuffle=False)
    return model


def train_detection(data: MultiIOData, epochs: int = 5) -> Any:
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    image = keras.Input((32, 32, 1), name="image")
    h = layers.Dense(32, activation="relu")(_image_branch(layers, image))
    scores = layers.Softmax(name="scores")(layers.Dense(10)(h))
    box = layers.Dense(4, activation="sigmoid", name="box")(h)
    model = keras.Model(image, [scores, box])
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 4.0])
    t = data.train
    model.fit(data.image[t], [data.y[t], data.box[t]], epochs=epochs, batch_size=32, verbose=0, shuffle=False)
    return model
