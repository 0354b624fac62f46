"""Bad inputs to `edgebuild build`: exit code, one-paragraph message, and no artifact left behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebuild.cli.main import main

pytestmark = pytest.mark.tf


def _build(args: list[str], out: Path, capsys) -> tuple[int, str]:
    code = main(["build", *args, "-o", str(out), "--set", "benchmark.enabled=false"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, " ".join(err.split())


def _no_artifacts(out: Path) -> bool:
    return not out.exists() or not any(out.rglob("*.tflite"))


@pytest.mark.parametrize(
    ("arrays", "code", "message"),
    [
        ({"x": np.zeros((10, 28, 28, 1), np.float32)}, 5, "samples have shape (28, 28, 1) but"),
        ({"x": np.zeros((10, 32, 32, 3), np.float32)}, 5, "The channel count differs (3 vs 1)"),
        ({"x": np.full((10, 32, 32, 1), np.nan, np.float32)}, 5, "10 sample(s) of 'x' contain NaN"),
        ({"x": np.zeros((0, 32, 32, 1), np.float32)}, 5, "holds no samples"),
        (
            {"x": np.zeros((10, 32, 32, 1), np.float32), "y": np.full(10, 12)},
            5,
            "labels go up to 12 but the model has 10 outputs",
        ),
        ({"y": np.zeros(3)}, 5, "has no array named 'x'"),
    ],
    ids=["shape", "channels", "nan", "empty", "labels", "no-x"],
)
def test_bad_data(keras2_cnn, tmp_path: Path, capsys, arrays: dict, code: int, message: str) -> None:
    data = tmp_path / "bad.npz"
    np.savez(data, **arrays)
    out = tmp_path / "out"
    got, err = _build([str(keras2_cnn.paths["keras"]), "-t", "mcu", "-d", str(data)], out, capsys)
    assert got == code
    assert err.startswith("edgebuild: data error:") and message in err and str(data) in err
    assert _no_artifacts(out)


def test_integer_target_without_data(keras2_cnn, tmp_path: Path, capsys) -> None:
    got, err = _build([str(keras2_cnn.paths["keras"]), "-t", "edgetpu"], tmp_path / "out", capsys)
    assert got == 5 and "needs calibration data: pass --data" in err
    assert _no_artifacts(tmp_path / "out")


@pytest.mark.parametrize(
    ("name", "content", "code", "message"),
    [
        ("model.keras", b"PK\x03\x04garbage", 4, "is not a valid .keras archive"),
        ("model.h5", b"not hdf5", 4, "Cannot load"),
        ("model.onnx", b"onnx", 4, "has an unknown format ('.onnx')"),
        ("model.tflite", None, 4, "is already a .tflite artifact"),
    ],
)
def test_bad_model_files(tmp_path: Path, capsys, name: str, content: bytes | None, code: int, message: str) -> None:
    model = tmp_path / name
    model.write_bytes(content or b"TFL3")
    got, err = _build([str(model), "-t", "mobile"], tmp_path / "out", capsys)
    assert got == code and message in err and str(model) in err
    assert _no_artifacts(tmp_path / "out")


def test_folder_that_is_not_a_savedmodel(tmp_path: Path, capsys) -> None:
    got, err = _build([str(tmp_path), "-t", "mobile"], tmp_path / "out", capsys)
    assert got == 4 and "has no saved_model.pb" in err


def test_multi_input_model_asking_for_training_is_refused_clearly(tmp_path: Path, capsys) -> None:
    """Multi-input models build (tests/integration/test_multi_io.py); the passes that feed one input refuse them."""
    import numpy as np
    import tf_keras

    a, b = tf_keras.Input(shape=(4,), name="a"), tf_keras.Input(shape=(4,), name="b")
    model = tf_keras.Model([a, b], tf_keras.layers.Dense(2)(tf_keras.layers.Concatenate()([a, b])))
    path, data = tmp_path / "two.keras", tmp_path / "two.npz"
    model.save(path)
    np.savez(data, a=np.ones((8, 4), np.float32), b=np.ones((8, 4), np.float32), y=np.zeros(8, np.int64))
    args = [str(path), "-t", "mcu", "--data", str(data), "--set", "quantization.method=qat"]
    got, err = _build(args, tmp_path / "out", capsys)
    assert got == 6 and "has 2 inputs (a, b)" in err and "single-input models only" in err
    assert _no_artifacts(tmp_path / "out")


def test_multi_output_model_builds(tmp_path: Path, capsys) -> None:
    import tf_keras

    inputs = tf_keras.Input(shape=(8, 8, 1))
    x = tf_keras.layers.Flatten()(inputs)
    model = tf_keras.Model(
        inputs, [tf_keras.layers.Dense(3, name="head_a")(x), tf_keras.layers.Dense(2, name="head_b")(x)]
    )
    path = tmp_path / "two_heads.keras"
    model.save(path)
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.default_rng(0).random((40, 8, 8, 1), dtype=np.float32))
    got, _ = _build([str(path), "-t", "mcu", "-t", "mobile", "-d", str(data)], tmp_path / "out", capsys)
    assert got == 0
    from edgebuild.artifact import read_artifact

    assert sorted(t.shape[-1] for t in read_artifact(tmp_path / "out" / "mcu" / "model.tflite").outputs) == [2, 3]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    from edgebuild.errors import ModelError

    with pytest.raises(ModelError):
        main(["--debug", "build", str(tmp_path / "missing.keras"), "-t", "mobile"])
