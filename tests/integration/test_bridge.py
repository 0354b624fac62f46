"""The Keras 3 -> tf_keras bridge: same outputs within tolerance, then QAT through it."""

from __future__ import annotations

import digits
import numpy as np
import pytest

from edgebuild.errors import UnsupportedError

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def keras3_residual(digits_data, tmp_path_factory):
    from edgebuild._tf import keras3

    keras = keras3()
    keras.utils.set_random_seed(0)
    model = digits.train(digits.build_residual(keras), digits_data.train_x, digits_data.train_y, epochs=4)
    path = tmp_path_factory.mktemp("bridge") / "residual.keras"
    model.save(path)
    return path, model.predict(digits_data.test_x, verbose=0)


def test_bridged_residual_model_matches_and_trains_with_qat(keras3_residual, digits_data) -> None:
    from edgebuild._tf import tf_keras
    from edgebuild.converters.keras_bridge import TOLERANCE, bridge_keras3
    from edgebuild.converters.qat import model_for_training, run_qat
    from edgebuild.model import load_model
    from edgebuild.profiles.schema import QuantizationSection, TrainingSection
    from edgebuild.runtime import LiteRTModel

    path, expected = keras3_residual
    report: dict = {}
    model = bridge_keras3(path, sample=digits_data.test_x[:32], report=report)
    via_pipeline, pipeline_report = model_for_training(load_model(path), sample=digits_data.test_x[:32])
    assert pipeline_report == report and [w.shape for w in via_pipeline.weights] == [w.shape for w in model.weights]
    assert isinstance(model, tf_keras().Model)
    assert report["max_abs_diff"] <= TOLERANCE and report["dropped_keys"] == {}
    got = model.predict(digits_data.test_x, verbose=0)
    assert np.max(np.abs(got - expected)) < TOLERANCE
    assert (got.argmax(-1) == expected.argmax(-1)).all()

    d = digits_data
    outcome = run_qat(
        model,
        (d.train_x[:1000], d.train_y[:1000]),
        (d.train_x[1000:], d.train_y[1000:]),
        TrainingSection(epochs=1, learning_rate=1e-4),
        QuantizationSection(scheme="int8", io="int8"),
        batch=1,
    )
    qat_acc = digits.accuracy(LiteRTModel(outcome.blob).predict(d.test_x)[0], d.test_y)
    float_acc = digits.accuracy(expected, d.test_y)
    assert qat_acc > float_acc - 0.15, (qat_acc, float_acc)


def test_edge_layer_zoo_bridges_within_tolerance(digits_data) -> None:
    from edgebuild._tf import keras3
    from edgebuild.converters.keras_bridge import TOLERANCE, bridge_keras3

    keras = keras3()
    layers = keras.layers
    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 1))
    x = layers.ZeroPadding2D(1)(layers.Rescaling(2.0, offset=-1.0)(inputs))
    x = layers.SeparableConv2D(8, 3, activation="relu6")(x)
    gate = layers.Conv2D(8, 1)(x)
    x = layers.Concatenate()([layers.Multiply()([gate, layers.Activation("hard_sigmoid")(gate)]), x])
    x = layers.Dropout(0.2)(layers.AveragePooling2D(2)(x))
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    x = layers.Activation("hard_swish")(x)
    x = layers.LeakyReLU(0.05)(layers.Conv2D(4, 1, activation="hard_sigmoid")(x))
    x = layers.Add()([layers.MaxPooling2D()(x), layers.AveragePooling2D(2)(x)])
    x = layers.Dense(10, activation="softmax")(layers.Flatten()(x))
    model = keras.Model(inputs, x)
    report: dict = {}
    bridge_keras3(model, sample=digits_data.test_x[:16] * 4.0, report=report)
    assert report["max_abs_diff"] <= TOLERANCE


def test_keras3_operations_and_unknown_layers_are_named(digits_data) -> None:
    from edgebuild._tf import keras3
    from edgebuild.converters.keras_bridge import bridge_keras3

    keras = keras3()
    layers = keras.layers
    inputs = keras.Input((32, 32, 1))
    model = keras.Model(inputs, layers.Dense(10)(layers.Flatten()(inputs - 0.5)))
    with pytest.raises(UnsupportedError, match=r"cannot rebuild 'subtract' \(Subtract from keras\.src\.ops"):
        bridge_keras3(model)

    @keras.saving.register_keras_serializable(package="tests")
    class Doubler(layers.Layer):
        def call(self, t):
            return t * 2.0

    inputs = keras.Input((32, 32, 1))
    model = keras.Model(inputs, layers.Dense(10)(layers.Flatten()(Doubler(name="doubler")(inputs))))
    with pytest.raises(UnsupportedError, match=r"cannot rebuild layer 'doubler' \(Doubler\): a layer tf_keras"):
        bridge_keras3(model)
