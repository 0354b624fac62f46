"""The Python API on real models: the CLI's bytes, every data form, typed errors, gates, and the Keras callback."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

import edgebuild
from edgebuild.cli.main import main
from edgebuild.errors import DataError, GateFailed, ModelError, ProfileError, UnsupportedError, UsageError

pytestmark = pytest.mark.tf

NO_BENCH = {"benchmark.enabled": False, "mcu.firmware": False}


@pytest.fixture(scope="module")
def cnn(keras2_cnn):
    """The keras2_cnn fixture's model, loaded back into memory (same weights as the .keras file)."""
    import tf_keras

    return tf_keras.models.load_model(keras2_cnn.paths["keras"], compile=False)


@pytest.fixture(scope="module")
def small_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits in [0, 1]: tiny models train and convert in a second."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images[..., None] / 16.0).astype(np.float32), digits.target.astype(np.int64)


def _tiny(keras, seed: int = 0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_in_memory_model_and_arrays_build_the_cli_bytes(cnn, keras2_cnn, digits_data, tmp_path: Path) -> None:
    assert (
        main(
            [
                "build",
                str(keras2_cnn.paths["keras"]),
                "-t",
                "mcu",
                "-d",
                str(digits_data.npz),
                "-o",
                str(tmp_path / "cli"),
                "--set",
                "benchmark.enabled=false",
                "--set",
                "mcu.firmware=false",
            ]
        )
        == 0
    )
    result = edgebuild.build(
        cnn, "mcu", (digits_data.test_x, digits_data.test_y), out=tmp_path / "api", overrides=NO_BENCH, progress=False
    )
    mcu = result["mcu"]
    assert not mcu.cached and mcu.passed and result.passed
    cli_artifact = tmp_path / "cli" / "mcu" / "model.tflite"
    assert mcu.artifact_bytes == cli_artifact.read_bytes()
    assert mcu.artifact_path == tmp_path / "api" / "mcu" / "model.tflite"
    # the same numbers, typed
    import json

    cli = json.loads((tmp_path / "cli" / "mcu" / "report.json").read_text())
    assert mcu.report.raw["validation"]["accuracy"] == cli["validation"]["accuracy"]
    assert mcu.report.validation.arena.proven_bytes == cli["validation"]["arena"]["proven_bytes"] > 0
    assert mcu.report.validation.accuracy.agreement == cli["validation"]["accuracy"]["agreement"]
    assert mcu.report.artifact.inputs[0].dtype == "int8" and mcu.report["artifact"]["size_bytes"] == len(
        mcu.artifact_bytes
    )
    # the report names the in-memory inputs, not the temporary files they went through
    text = (tmp_path / "api" / "mcu" / "report.json").read_text() + (tmp_path / "api" / "mcu" / "report.md").read_text()
    assert "edgebuild-api-" not in text
    assert mcu.report["model"]["path"] == f"in-memory tf_keras model '{cnn.name}'"
    assert mcu.report["data"]["source"].startswith("data=(float32 (597, 32, 32, 1), int64 (597,))")
    # plain text and Jupyter renderings of the summary
    assert str(result).splitlines()[0].split() == [
        "target",
        "size",
        "vs",
        "fp32",
        "I/O",
        "accuracy",
        "(vs",
        "float)",
        "agree",
        "host",
        "p50",
        "arena",
        "status",
        "artifact",
    ]
    assert "<table class='edgebuild'>" in result._repr_html_() and "mcu" in repr(result)


def test_keras3_in_memory_model_builds_the_cli_bytes(small_digits, tmp_path: Path) -> None:
    import keras

    x, y = small_digits
    model = _tiny(keras)
    model.save(tmp_path / "tiny.keras")
    np.savez(tmp_path / "d.npz", x=x[:300], y=y[:300])
    settings = ["--set", "benchmark.enabled=false", "--set", "validation.enabled=false", "--set", "mcu.c_array=false"]
    assert (
        main(
            [
                "build",
                str(tmp_path / "tiny.keras"),
                "-t",
                "mcu",
                "-d",
                str(tmp_path / "d.npz"),
                "-o",
                str(tmp_path / "cli"),
                *settings,
            ]
        )
        == 0
    )
    result = edgebuild.build(
        model,
        ["mcu"],
        data={"x": x[:300], "y": y[:300]},
        out=tmp_path / "api",
        overrides=[s for s in settings if s != "--set"],
        progress=False,
    )
    assert result["mcu"].artifact_bytes == (tmp_path / "cli" / "mcu" / "model.tflite").read_bytes()
    assert result["mcu"].report["model"]["format"] == "keras3"


def test_every_data_form_gives_the_same_data(cnn, digits_data, tmp_path: Path) -> None:
    """Each form becomes the same deterministic .npz (so the same build, and the same cache key)."""
    import tensorflow as tf

    from edgebuild.api import _Inputs

    x, y = digits_data.test_x, digits_data.test_y
    name = cnn.inputs[0].name.split(":")[0]
    forms = {
        "tuple": (x, y),
        "list": [x, y],
        "dict": {"x": x, "y": y},
        "named dict": {name: x, "label": y},
        "dataset batched": tf.data.Dataset.from_tensor_slices((x, y)).batch(64),
        "dataset unbatched": tf.data.Dataset.from_tensor_slices((x, y)),
        "dataset of dicts": tf.data.Dataset.from_tensor_slices({"x": x, "y": y}).batch(100),
        "keras style (x, y, weights)": (x, y, np.ones(len(x))),
    }
    with _Inputs() as inputs:
        inputs.model(cnn)
        reference = _sha(inputs.data((x, y), "data"))
        for form, data in forms.items():
            assert _sha(inputs.data(data, "data")) == reference, form
        only_x = _sha(inputs.data(x, "data"))
        assert _sha(inputs.data(tf.data.Dataset.from_tensor_slices(x).batch(32), "data")) == only_x
    np.savez(tmp_path / "x.npz", x=x)
    from edgebuild.data import load_dataset

    assert np.array_equal(load_dataset(tmp_path / "x.npz").x, x)


def test_a_dataset_builds_end_to_end(small_digits, tmp_path: Path) -> None:
    import tensorflow as tf
    import tf_keras

    x, y = small_digits
    result = edgebuild.build(
        _tiny(tf_keras),
        "mcu",
        tf.data.Dataset.from_tensor_slices((x[:300], y[:300])).batch(32),
        val_data=(x[300:400], y[300:400]),
        out=tmp_path,
        overrides=NO_BENCH,
        progress=False,
    )
    report = result["mcu"].report
    assert report["data"]["samples"] == 300 and report["data"]["labels"] is True
    assert report["data"]["validation_source"] == "val_data=(float32 (100, 8, 8, 1), int64 (100,))"
    assert report.validation.accuracy.samples == 100


def test_unregistered_custom_layer_builds_from_a_savedmodel_export(small_digits, tmp_path: Path) -> None:
    import tf_keras

    class Doubled(tf_keras.layers.Layer):  # not registered: its .keras archive does not load back
        def call(self, inputs):
            return inputs * 2.0

    model = tf_keras.Sequential(
        [
            tf_keras.Input((8, 8, 1)),
            Doubled(),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dense(10, activation="softmax"),
        ]
    )
    messages = []

    class Progress:
        def stage_started(self, target, stage): ...
        def stage_finished(self, target, stage, seconds, note=""): ...
        def message(self, text):
            messages.append(text)

    result = edgebuild.build(model, "mobile", out=tmp_path, overrides={"benchmark.enabled": False}, progress=Progress())
    assert result["mobile"].report["model"] == {
        **result["mobile"].report["model"],
        "format": "savedmodel",
        "path": f"in-memory tf_keras model '{model.name}'",
    }
    assert any("did not load back from .keras" in m and "SavedModel export" in m for m in messages), messages
    x = small_digits[0][:4]
    from edgebuild.runtime import LiteRTModel

    assert np.allclose(
        LiteRTModel(result["mobile"].artifact_path).predict(x)[0], model.predict(x, verbose=0), atol=1e-2
    )


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (np.zeros((10, 28, 28, 1), np.float32), DataError, "samples have shape (28, 28, 1) but"),
        (np.zeros((10, 32, 32, 3), np.float32), DataError, "The channel count differs (3 vs 1)"),
        (np.full((10, 32, 32, 1), np.nan, np.float32), DataError, "10 sample(s) of 'x' contain NaN"),
        (np.zeros((0, 32, 32, 1), np.float32), DataError, "holds no samples"),
        (
            (np.zeros((10, 32, 32, 1), np.float32), np.full(10, 12)),
            DataError,
            "labels go up to 12 but the model has 10",
        ),
        ({"y": np.zeros(3)}, DataError, "has no inputs"),
        ({"a": np.zeros((4, 32, 32, 1)), "b": np.zeros((4, 32, 32, 1))}, DataError, "but the model takes 1"),
        (([np.zeros((32, 32, 1)), np.zeros((16, 16, 1))],), DataError, "ragged or mixed shapes"),
    ],
    ids=["shape", "channels", "nan", "empty", "labels", "no-x", "multi-input", "ragged"],
)
def test_bad_data_raises_typed_errors(cnn, tmp_path: Path, data, error, message: str) -> None:
    with pytest.raises(error) as caught:
        edgebuild.build(cnn, "mcu", data, out=tmp_path, overrides=NO_BENCH, progress=False)
    text = str(caught.value)
    assert message in text and "data=" in text and "edgebuild-api-" not in text
    assert not any(tmp_path.rglob("*.tflite"))


def test_bad_models_and_requests_raise_typed_errors(cnn, tmp_path: Path) -> None:
    import tensorflow as tf
    import tf_keras

    cases = [
        (lambda: edgebuild.build(tmp_path / "missing.keras", "mobile"), ModelError, "does not exist"),
        (lambda: edgebuild.build(tmp_path, "mobile"), ModelError, "has no saved_model.pb"),
        (lambda: edgebuild.build(object(), "mobile"), UsageError, "must be a path"),
        (lambda: edgebuild.build(cnn, []), UsageError, "No target given"),
        (lambda: edgebuild.build(cnn, "tpu"), ProfileError, "Unknown target 'tpu'"),
        (lambda: edgebuild.build(cnn, "mcu", overrides={"quantization.bits": 4}), ProfileError, "unknown key"),
        (lambda: edgebuild.build(cnn, "mcu"), DataError, "needs calibration data"),
        (lambda: edgebuild.build(cnn, "mcu", calibration="noise"), UsageError, "calibration='noise'"),
        (
            lambda: edgebuild.build(cnn, "mcu", tf.data.Dataset.from_tensor_slices(np.zeros((2, 32, 32, 1))).repeat()),
            DataError,
            "infinite",
        ),
        (lambda: edgebuild.build(tf_keras.Sequential([tf_keras.layers.Dense(2)]), "mobile"), ModelError, "not built"),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as caught:
            call()
        assert message in str(caught.value), (error, message)
        assert "edgebuild-api-" not in str(caught.value)
    # a multi-input model builds (issue 16); only the passes that feed one input refuse it
    a, b = tf_keras.Input(shape=(4,), name="a"), tf_keras.Input(shape=(4,), name="b")
    two = tf_keras.Model([a, b], tf_keras.layers.Dense(2)(tf_keras.layers.Concatenate()([a, b])))
    result = edgebuild.build(two, "mobile", out=tmp_path / "two", overrides=NO_BENCH, progress=False)
    assert result.passed and len(result["mobile"].report.artifact.inputs) == 2
    data = {"a": np.ones((8, 4), np.float32), "b": np.ones((8, 4), np.float32), "y": np.zeros(8, np.int64)}
    qat = {"quantization.method": "qat"}
    with pytest.raises(UnsupportedError) as caught:
        edgebuild.build(two, "mcu", data, out=tmp_path / "qat", overrides=qat, progress=False)
    assert "has 2 inputs (a, b)" in str(caught.value) and "single-input models only" in str(caught.value)


def test_gates_raise_or_return_failed_checks(cnn, digits_data, tmp_path: Path) -> None:
    over = {**NO_BENCH, "budget": {"flash": "4KiB"}}
    data = (digits_data.test_x, digits_data.test_y)
    with pytest.raises(GateFailed) as caught:
        edgebuild.build(cnn, "mcu", data, out=tmp_path, overrides=over, progress=False)
    failed = caught.value.result  # the whole outcome travels with the exception
    assert failed["mcu"].failed_checks[0].name == "budgets" and failed["mcu"].artifact_path.is_file()
    result = edgebuild.build(cnn, "mcu", data, out=tmp_path, overrides=over, gates=False, progress=False)
    assert result["mcu"].cached  # same in-memory model and arrays: the cache recognizes them
    assert not result.passed and result["mcu"].error is None
    assert [c.name for c in result.failed_checks["mcu"]] == ["budgets"]
    assert "budgets failed" in str(result) and "FAILED" in result._repr_html_()


def test_validate_bench_and_carray_take_the_build(cnn, digits_data, tmp_path: Path) -> None:
    data = (digits_data.test_x, digits_data.test_y)
    result = edgebuild.build(cnn, "mcu", data, out=tmp_path / "b", overrides=NO_BENCH, progress=False)
    mcu = result["mcu"]
    report = edgebuild.validate(mcu, "mcu", data, reference=cnn)
    assert report.passed and report.accuracy.agreement > 0.95 and report.arena.proven_bytes > 0
    assert "<table" in report._repr_html_() and "pass" in str(report)
    with pytest.raises(GateFailed) as caught:  # bytes in, no reference: rules and budgets only
        edgebuild.validate(
            mcu.artifact_bytes,
            "mcu",
            {"x": data[0], "y": data[1]},
            overrides={"validation.tflm": False, "budget.flash": 1024},
        )
    assert [c.name for c in caught.value.result.failed_checks] == ["budgets"]
    assert str(caught.value).startswith("tflite bytes (") and caught.value.result.accuracy is None
    assert (
        edgebuild.validate(
            mcu.artifact_bytes, "mcu", overrides={"validation.tflm": False, "budget.flash": 1024}, gates=False
        )
        .failed_checks[0]
        .name
        == "budgets"
    )
    timing = edgebuild.bench(mcu, threads=[1, 2], runs=5, warmup=1, data=data[0][:10])
    assert set(timing.threads) == {1, 2} and timing.p50_ms > 0 and timing.threads[2].runs == 5
    paths = edgebuild.carray(mcu, tmp_path / "c", name="digits_model")
    assert {p.name for p in paths} == {"model_data.h", "model_data.cc", "model_ops.h", "model_settings.h", "main.cc"}
    assert str(mcu.report.validation.arena.recommended_bytes) in (tmp_path / "c" / "model_settings.h").read_text()
    profile = edgebuild.resolve_profile("mcu", {"quantization.io": "uint8", "budget.flash": "512KiB"})
    assert profile.quantization.io == "uint8" and profile.budget.flash == 512 * 1024


def test_budget_callback_records_into_history(small_digits) -> None:
    import tf_keras

    from edgebuild.keras import BudgetCallback

    x, y = small_digits
    model = _tiny(tf_keras)
    budget = BudgetCallback(targets=["mcu"], every=2, data=(x[1400:], y[1400:]), verbose=0)
    history = model.fit(x[:1400], y[:1400], epochs=2, verbose=0, callbacks=[budget])
    h = history.history
    assert len(h["loss"]) == len(h["mcu_size_bytes"]) == 2
    assert math.isnan(h["mcu_size_bytes"][0])  # epoch 1 of every=2: not measured
    assert 1000 < h["mcu_size_bytes"][1] < 10_000 and h["mcu_arena_bytes"][1] > 0
    assert 0.0 <= h["mcu_agreement"][1] <= 1.0 and h["mcu_within_budget"][1] == 1.0
    assert budget.seconds and h["edgebuild_seconds"][1] == budget.seconds[0]
    assert budget.stop_reason is None and budget.last_result["mcu"].passed


def test_budget_callback_stops_keras3_training_over_budget(small_digits) -> None:
    import keras

    from edgebuild.keras import BudgetCallback

    x, y = small_digits
    budget = BudgetCallback(
        "mcu", data=(x[1400:], y[1400:]), overrides={"budget.flash": 1024, "validation.tflm": False}, verbose=0
    )
    history = _tiny(keras).fit(x[:1400], y[:1400], epochs=3, verbose=0, callbacks=[budget])
    assert len(history.history["loss"]) == 1  # stopped after the first measurement
    assert history.history["mcu_within_budget"] == [0.0]
    assert "over budget" in budget.stop_reason and "1,024" in budget.stop_reason
