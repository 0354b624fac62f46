"""Session fixtures: real models trained on scikit-learn's digits, saved in every input format.

Nothing is downloaded; every model is trained here in a few seconds. Models that
need TensorFlow are only built when a test asks for them, so unit tests stay fast.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The TFLite Micro object cache is content-addressed and safe to share across sessions (unlike the build cache).
os.environ.setdefault("EDGEBUILD_TFLM_CACHE_DIR", str(Path(__file__).resolve().parents[1] / "build" / "tflm-cache"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import digits


@dataclass(frozen=True)
class DigitsData:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    npz: Path  # held-out samples with labels, what users pass as --data


@dataclass(frozen=True)
class SavedModels:
    """One trained model saved in several formats, plus its float accuracy on the held-out digits."""

    paths: dict[str, Path]
    accuracy: dict[str, float]  # float top-1 on the held-out digits, per key of `paths`


@pytest.fixture(scope="session", autouse=True)
def isolated_build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own empty build cache, never the user's."""
    path = tmp_path_factory.mktemp("edgebuild-cache")
    os.environ["EDGEBUILD_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def digits_data(tmp_path_factory: pytest.TempPathFactory) -> DigitsData:
    x, y = digits.load_digits_32(seed=0)
    npz = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(npz, x=x[1200:], y=y[1200:])
    return DigitsData(x[:1200], y[:1200], x[1200:], y[1200:], npz)


@pytest.fixture(scope="session")
def keras2_cnn(digits_data: DigitsData, tmp_path_factory: pytest.TempPathFactory) -> SavedModels:
    """Sequential CNN in tf_keras, saved as SavedModel, .keras and .h5."""
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = digits.train(digits.build_cnn(tf_keras), digits_data.train_x, digits_data.train_y, epochs=5)
    root = tmp_path_factory.mktemp("keras2_cnn")
    paths = {"savedmodel": root / "savedmodel", "keras": root / "cnn.keras", "h5": root / "cnn.h5"}
    tf.saved_model.save(model, str(paths["savedmodel"]))
    model.save(paths["keras"])
    model.save(paths["h5"])
    acc = digits.accuracy(model.predict(digits_data.test_x, verbose=0), digits_data.test_y)
    return SavedModels(paths, dict.fromkeys(paths, acc))


@pytest.fixture(scope="session")
def keras2_residual(digits_data: DigitsData, tmp_path_factory: pytest.TempPathFactory) -> SavedModels:
    """Functional model with BatchNorm, depthwise conv and a residual Add, in tf_keras (.keras)."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = digits.train(digits.build_residual(tf_keras), digits_data.train_x, digits_data.train_y, epochs=8)
    path = tmp_path_factory.mktemp("keras2_residual") / "residual.keras"
    model.save(path)
    acc = digits.accuracy(model.predict(digits_data.test_x, verbose=0), digits_data.test_y)
    return SavedModels({"keras": path}, {"keras": acc})


@pytest.fixture(scope="session")
def keras3_models(digits_data: DigitsData, tmp_path_factory: pytest.TempPathFactory) -> SavedModels:
    """Keras 3 (not tf_keras) CNN and residual model saved as .keras."""
    import keras

    root = tmp_path_factory.mktemp("keras3")
    paths, accs = {}, {}
    for name, builder, epochs in (("cnn", digits.build_cnn, 5), ("residual", digits.build_residual, 8)):
        keras.utils.set_random_seed(0)
        model = digits.train(builder(keras), digits_data.train_x, digits_data.train_y, epochs=epochs)
        paths[name] = root / f"{name}.keras"
        model.save(paths[name])
        accs[name] = digits.accuracy(model.predict(digits_data.test_x, verbose=0), digits_data.test_y)
    return SavedModels(paths, accs)


@dataclass(frozen=True)
class ReferenceModel:
    """One reference architecture trained and saved as Keras 2 .h5, with held-out data as --data."""

    name: str
    path: Path
    npz: Path  # x (and y for classifiers): held-out samples
    keras_model: object
    data: object  # reference_archs.ReferenceData


@pytest.fixture(scope="session")
def reference_model(tmp_path_factory: pytest.TempPathFactory):
    """Factory: reference_model("ds_cnn") trains that architecture once per session and saves it."""
    import reference_archs

    built: dict[str, ReferenceModel] = {}

    def get(name: str) -> ReferenceModel:
        if name not in built:
            import tf_keras

            model, data = reference_archs.train(tf_keras, reference_archs.ARCHITECTURES[name])
            root = tmp_path_factory.mktemp(name)
            path = root / f"{name}.h5"
            model.save(path)
            npz = root / "data.npz"
            arrays = {"x": data.test_x} if data.test_y is None else {"x": data.test_x, "y": data.test_y}
            np.savez(npz, **arrays)
            built[name] = ReferenceModel(name, path, npz, model, data)
        return built[name]

    return get


@pytest.fixture(scope="session")
def digits_build(keras2_cnn: SavedModels, digits_data: DigitsData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build of the digits CNN for every built-in target, shared by the report.html and compare tests."""
    from edgebuild.cli.main import main

    out = tmp_path_factory.mktemp("digits-build") / "out"
    code = main(
        [
            "build",
            str(keras2_cnn.paths["savedmodel"]),
            "--target",
            "all",
            "--data",
            str(digits_data.npz),
            "--out",
            str(out),
            "--set",
            "benchmark.runs=20",
        ]
    )
    assert code == 0, "the shared digits build failed"
    return out
