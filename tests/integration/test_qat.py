"""QAT, the layer audit, early stopping and mixed precision, with real (short) training on digits."""

from __future__ import annotations

import digits
import numpy as np
import pytest

from edgebuild.errors import DataError, UnsupportedError
from edgebuild.profiles.schema import QuantizationSection, TrainingSection

pytestmark = pytest.mark.tf

INT8 = QuantizationSection(scheme="int8", io="int8", calibration_samples=200)


@pytest.fixture(scope="module")
def split(digits_data):
    d = digits_data
    return {
        "train": (d.train_x[:800], d.train_y[:800]),
        "val": (d.train_x[800:1000], d.train_y[800:1000]),
        "cal": d.train_x[1000:1200],
        "test": (d.test_x, d.test_y),
    }


@pytest.fixture(scope="module")
def float_cnn(split):
    from edgebuild._tf import tf_keras

    keras2 = tf_keras()
    keras2.utils.set_random_seed(0)
    return digits.train(digits.build_cnn(keras2), *split["train"], epochs=4)


def _accuracy(blob: bytes, test: tuple[np.ndarray, np.ndarray]) -> float:
    from edgebuild.runtime import LiteRTModel

    return digits.accuracy(LiteRTModel(blob).predict(test[0])[0], test[1])


def _ptq(model, quant, calibration) -> bytes:
    from edgebuild._tf import tf
    from edgebuild.converters.ptq import convert

    tensorflow = tf()
    spec = tensorflow.TensorSpec((1, *model.inputs[0].shape[1:]), tensorflow.float32)
    fn = tensorflow.function(lambda t: model(t, training=False), input_signature=[spec]).get_concrete_function()
    return convert(fn, model, quant, calibration)


def _activation_dtypes(blob: bytes) -> set[str]:
    """dtypes of the activations every compute op reads and writes (QUANTIZE/DEQUANTIZE left out)."""
    from edgebuild.artifact import parse_artifact

    artifact = parse_artifact(blob)
    used = {
        i
        for op in artifact.ops
        if op.name not in {"QUANTIZE", "DEQUANTIZE"}
        for i in (*op.inputs, *op.outputs)
        if i >= 0
    }
    return {artifact.tensors[i].dtype.lower() for i in used if not artifact.tensors[i].is_constant}


def test_qat_artifact_is_full_int8_and_at_least_as_accurate_as_ptq(float_cnn, split) -> None:
    from edgebuild.converters.qat import run_qat

    ptq_acc = _accuracy(_ptq(float_cnn, INT8, split["cal"]), split["test"])
    epochs: list[dict] = []
    outcome = run_qat(
        float_cnn,
        split["train"],
        split["val"],
        TrainingSection(epochs=2, learning_rate=1e-4),
        INT8,
        batch=1,
        progress=epochs.append,
    )
    qat_acc = _accuracy(outcome.blob, split["test"])
    assert _activation_dtypes(outcome.blob) <= {"int8", "int32"}
    from edgebuild.artifact import parse_artifact

    artifact = parse_artifact(outcome.blob)
    assert [t.dtype.lower() for t in (*artifact.inputs, *artifact.outputs)] == ["int8", "int8"]
    assert qat_acc >= ptq_acc - 0.02, (qat_acc, ptq_acc)
    assert [e["epoch"] for e in epochs] == [1, 2] and {"loss", "val_loss", "val_accuracy"} <= set(epochs[0])
    report = outcome.report()
    assert report["pass"] == "qat" and report["epochs_run"] == 2 and report["layers"]["auto"] == []


def _model_with_auto_layers(keras2):
    layers = keras2.layers
    inputs = keras2.Input((32, 32, 1))
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)
    a = layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = layers.Multiply()([a, layers.ReLU(6.0)(a)])  # hard-swish-like gate
    x = layers.BatchNormalization(momentum=0.9)(layers.MaxPooling2D()(x))  # standalone: nothing to fold into
    x = layers.Lambda(lambda t: t[..., :12])(x)  # a slice: values pass through
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras2.Model(inputs, layers.Dense(10, activation="softmax")(x))


def test_audit_handles_common_unsupported_layers_and_the_model_trains(split) -> None:
    from edgebuild._tf import tf_keras
    from edgebuild.converters.qat import audit_layers, run_qat

    keras2 = tf_keras()
    keras2.utils.set_random_seed(0)
    model = digits.train(_model_with_auto_layers(keras2), *split["train"], epochs=4)
    float_acc = digits.accuracy(model.predict(split["test"][0], verbose=0), split["test"][1])
    auto = {a.type: a.config for a in audit_layers(model) if a.verdict == "auto"}
    assert auto == {
        "Rescaling": "output",
        "Multiply": "output",
        "BatchNormalization": "output",
        "Lambda": "passthrough",
    }
    assert not [a for a in audit_layers(model) if a.verdict == "refused"]
    outcome = run_qat(model, split["train"], split["val"], TrainingSection(epochs=2, learning_rate=3e-4), INT8)
    assert _activation_dtypes(outcome.blob) <= {"int8", "int32"}
    qat_acc = _accuracy(outcome.blob, split["test"])
    print(f"auto-layer model: float {float_acc:.3f}, QAT int8 {qat_acc:.3f}")
    assert float_acc > 0.5 and qat_acc > float_acc - 0.1


def test_refused_layers_are_listed_with_the_choices() -> None:
    from edgebuild._tf import tf_keras
    from edgebuild.converters.qat import quantize_aware

    keras2 = tf_keras()
    layers = keras2.layers
    inputs = keras2.Input((32, 32, 1))
    x = layers.Lambda(lambda t: t * 2.0 + 1.0, name="affine")(inputs)
    x = layers.LSTM(4, name="rnn")(layers.Reshape((32, 32))(x))
    model = keras2.Model(inputs, layers.Dense(10)(x))
    with pytest.raises(UnsupportedError) as error:
        quantize_aware(model)
    assert str(error.value) == (
        "Quantization-aware training cannot handle 2 layer(s) of this model:\n"
        "  - affine (Lambda): computes new values; only slicing/reshaping Lambda layers pass through\n"
        "  - rnn (LSTM): no 8-bit quantization config in TFMOT\n"
        "Choices: remove or replace these layers (e.g. with a supported layer or a slicing Lambda), "
        "or fall back to post-training quantization with --set quantization.method=ptq."
    )


def test_early_stopping_stops_on_a_plateau_and_keeps_the_best_epoch(float_cnn, split) -> None:
    from edgebuild._tf import tf_keras
    from edgebuild.converters.train import fit

    model = tf_keras().models.clone_model(float_cnn)
    model.set_weights(float_cnn.get_weights())
    result = fit(
        model,
        split["train"],
        split["val"],
        TrainingSection(epochs=20, learning_rate=1e-9, early_stopping=2, batch_size=64),
    )
    assert result.stopped_early and result.epochs_run < 20
    assert result.stop_reason == "early stopping: val_loss did not improve for 2 epochs"
    assert result.epochs_run == len(result.history) and result.best_epoch <= result.epochs_run - 2
    assert result.to_dict()["monitor"] == "val_loss"


def test_mixed_precision_training_then_conversion(split) -> None:
    from edgebuild._tf import tf_keras
    from edgebuild.converters import precision
    from edgebuild.converters.train import fit
    from edgebuild.errors import ConversionError

    keras2 = tf_keras()
    keras2.utils.set_random_seed(0)
    model = digits.build_cnn(keras2)
    result = fit(
        model, split["train"], split["val"], TrainingSection(epochs=2, learning_rate=1e-3, mixed_precision="float16")
    )
    assert result.mixed_precision == "mixed_float16"
    assert result.history[-1]["val_accuracy"] > 0.5
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}  # trained weights came back
    assert keras2.mixed_precision.global_policy().name == "float32"
    blob = _ptq(model, INT8, split["cal"])
    assert _accuracy(blob, split["test"]) > 0.5

    mixed = precision.to_policy(model, "mixed_float16")  # what a user's mixed model looks like
    with pytest.raises(ConversionError, match="neither a custom op nor a flex op"):
        _ptq(mixed, QuantizationSection(scheme="float16"), None)
    rebuilt = precision.to_float32(mixed)
    assert _accuracy(_ptq(rebuilt, QuantizationSection(scheme="float16"), None), split["test"]) > 0.5


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda x, y: (x, None), "Training needs labels"),
        (lambda x, y: (x, y + 10), "labels go up to 19 but the model has 10 output classes"),
        (lambda x, y: (x[:5], y[:5]), "Only 5 training samples"),
    ],
)
def test_bad_training_data_fails_before_any_training(float_cnn, split, mutate, message) -> None:
    from edgebuild.converters.qat import run_qat

    epochs: list[dict] = []
    with pytest.raises(DataError, match=message):
        run_qat(
            float_cnn, mutate(*split["train"]), split["val"], TrainingSection(epochs=1), INT8, progress=epochs.append
        )
    assert epochs == []
