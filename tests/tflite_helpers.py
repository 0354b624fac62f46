"""Tiny tf_keras models and the TFLite conversion recipes the integration tests share.

Plain functions, no fixtures: each test module keeps its own (module- or session-scoped)
fixture and calls these. Everything goes through the real `tf.lite.TFLiteConverter`.
TensorFlow is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

Scheme = Literal["float32", "float16", "int8"]
IOType = Literal["int8", "uint8", "float32"]


def seeded_cnn(
    keras: Any,
    input_shape: Sequence[int] = (32, 32, 1),
    *,
    head: Literal["gap", "flatten"] = "gap",
    softmax: bool = False,
) -> Any:
    """Sequential Conv2D(8)-MaxPool-Conv2D(16)-head-Dense(10) with Glorot weights seeded 1, 2, 3.

    head="gap" ends in GlobalAveragePooling2D; head="flatten" in MaxPool + Flatten.
    The weights are fixed by the initializer seeds alone (no global seed needed).
    """
    init = keras.initializers.GlorotUniform
    layers = keras.layers
    stack = [
        layers.Input(tuple(input_shape)),
        layers.Conv2D(8, 3, activation="relu", kernel_initializer=init(seed=1)),
        layers.MaxPooling2D(),
        layers.Conv2D(16, 3, activation="relu", kernel_initializer=init(seed=2)),
    ]
    stack += [layers.GlobalAveragePooling2D()] if head == "gap" else [layers.MaxPooling2D(), layers.Flatten()]
    stack.append(layers.Dense(10, activation="softmax" if softmax else None, kernel_initializer=init(seed=3)))
    return keras.Sequential(stack)


def random_calibration(model: Any, samples: int = 32, seed: int = 0) -> np.ndarray:
    """`samples` seeded uniform [0, 1) float32 inputs shaped like the model's (single) input, batch dim dropped."""
    shape = tuple(model.input_shape[1:])
    return np.random.default_rng(seed).random((samples, *shape), dtype=np.float32)


def to_tflite(
    model: Any,
    scheme: Scheme = "float32",
    io: IOType = "int8",
    calibration: np.ndarray | None = None,
    samples: int = 32,
    seed: int = 0,
) -> bytes:
    """Convert a Keras model with the real TFLiteConverter and return the .tflite bytes.

    scheme="float32": plain conversion. "float16": float16 weights (Optimize.DEFAULT).
    "int8": full-integer (TFLITE_BUILTINS_INT8), calibrated one sample at a time on
    `calibration`, or on `random_calibration(model, samples, seed)` when it is None;
    `io` sets inference_input/output_type ("float32" keeps float inputs and outputs).
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if scheme == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif scheme == "int8":
        data = random_calibration(model, samples, seed) if calibration is None else calibration
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample[None]] for sample in data)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io != "float32":
            converter.inference_input_type = converter.inference_output_type = getattr(tf, io)
    elif scheme != "float32":
        raise ValueError(f"unknown scheme {scheme!r}: expected float32, float16 or int8")
    return converter.convert()
