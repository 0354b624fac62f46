"""edgebuild.runtime against real converted models in real LiteRT and TFLite Micro."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from digits import load_digits_32
from tflite_helpers import seeded_cnn, to_tflite

from edgebuild.errors import ArtifactError, DataError
from edgebuild.runtime import LiteRTModel, arena_is_sufficient, measure_arena, tflm_predict


@dataclass
class Models:
    float32: Path
    float16: Path
    int8: Path
    x: np.ndarray  # held-out float samples, (N, 32, 32, 1) in [0, 1]
    keras_out: np.ndarray  # the Keras model's softmax outputs for x


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Models:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras as keras

    images, labels = load_digits_32(seed=0)  # shuffled by the same seeded permutation
    train_x, train_y, x = images[:1400], labels[:1400], images[1400:]

    model = seeded_cnn(keras, (32, 32, 1), head="flatten", softmax=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(train_x, train_y, epochs=3, batch_size=64, shuffle=False, verbose=0)

    out = tmp_path_factory.mktemp("runtime_models")
    paths = {}
    for scheme in ("float32", "float16", "int8"):
        paths[scheme] = out / f"{scheme}.tflite"
        paths[scheme].write_bytes(to_tflite(model, scheme, calibration=train_x[:200]))
    return Models(**paths, x=x, keras_out=model.predict(x, verbose=0))


def _argmax_agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))


def test_import_is_light():
    code = "import sys, edgebuild.runtime, edgebuild.bench; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# LiteRT


@pytest.mark.tf
def test_float32_model_matches_keras(models):
    m = LiteRTModel(models.float32)
    assert m.runtime_name in {"ai-edge-litert", "tflite-runtime"}
    assert m.runtime_version
    (out,) = m.predict(models.x)
    assert out.dtype == np.float32 and out.shape == models.keras_out.shape
    np.testing.assert_allclose(out, models.keras_out, rtol=1e-4, atol=1e-5)


@pytest.mark.tf
def test_float16_model_close_to_keras(models):
    (out,) = LiteRTModel(models.float16).predict(models.x)
    np.testing.assert_allclose(out, models.keras_out, atol=1e-2)
    assert _argmax_agreement(out, models.keras_out) >= 0.99


@pytest.mark.tf
def test_int8_model_within_quantization_tolerance(models):
    m = LiteRTModel(models.int8)
    assert m.input_details[0]["dtype"] == np.int8
    assert m.output_details[0]["dtype"] == np.int8
    (out,) = m.predict(models.x)
    assert out.dtype == np.float32 and out.shape == models.keras_out.shape
    # softmax outputs in [0, 1]: the int8 output step is 1/256; allow a few steps of drift
    assert np.abs(out - models.keras_out).max() < 0.1
    assert np.abs(out - models.keras_out).mean() < 0.01
    assert _argmax_agreement(out, models.keras_out) >= 0.95


@pytest.mark.tf
def test_int8_predict_uses_the_artifacts_own_quantization(models):
    m = LiteRTModel(models.int8)
    scale, zero_point = m.input_details[0]["quantization"]
    q = np.clip(np.round(models.x / scale) + zero_point, -128, 127).astype(np.int8)
    # pre-quantized data passes through untouched and gives the same answer as float data
    np.testing.assert_array_equal(m.predict(q)[0], m.predict(models.x)[0])


@pytest.mark.tf
def test_predict_from_bytes_and_batched_resize_agree(models):
    by_path = LiteRTModel(models.float32).predict(models.x[:10])[0]
    from_bytes = LiteRTModel(models.float32.read_bytes())
    assert from_bytes.source == "<model bytes>"
    np.testing.assert_allclose(from_bytes.predict(models.x[:10], batch_size=4)[0], by_path, rtol=1e-5, atol=1e-6)


@pytest.mark.tf
def test_wrong_input_shape_is_a_data_error(models):
    m = LiteRTModel(models.int8)
    with pytest.raises(DataError, match=r"expects data of shape \(N, 32, 32, 1\).*got \(5, 28, 28, 1\)"):
        m.predict(np.zeros((5, 28, 28, 1), np.float32))
    with pytest.raises(DataError, match=r"got \(32, 32, 1\)"):
        m.predict(np.zeros((32, 32, 1), np.float32))
    with pytest.raises(DataError, match="takes 1 input"):
        m.predict([models.x, models.x])


@pytest.mark.tf
def test_truncated_model_is_an_artifact_error(models, tmp_path):
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(models.int8.read_bytes()[: models.int8.stat().st_size // 2])
    with pytest.raises(ArtifactError, match=re.escape("truncated.tflite")):
        LiteRTModel(truncated)
    with pytest.raises(ArtifactError, match=re.escape("truncated.tflite")):
        tflm_predict(truncated, models.x[:1], 1 << 20)
    with pytest.raises(ArtifactError, match=re.escape("truncated.tflite")):
        measure_arena(truncated)


def test_garbage_and_missing_files_are_artifact_errors(tmp_path):
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ArtifactError, match=re.escape("garbage.tflite cannot be loaded")):
        LiteRTModel(garbage)
    with pytest.raises(ArtifactError, match="not a TensorFlow Lite model"):
        arena_is_sufficient(garbage, 1 << 20)
    with pytest.raises(ArtifactError, match=r"Cannot read .*missing.tflite"):
        LiteRTModel(tmp_path / "missing.tflite")


# ---------------------------------------------------------------------------------------------
# TensorFlow Lite Micro


@pytest.mark.tf
def test_tflm_agrees_with_litert_on_int8(models):
    arena = measure_arena(models.int8)
    (micro,) = tflm_predict(models.int8, models.x, arena)
    (lite,) = LiteRTModel(models.int8).predict(models.x)
    assert micro.shape == lite.shape and micro.dtype == np.float32
    assert _argmax_agreement(micro, lite) >= 0.95
    # different int8 kernels (TFLM reference vs XNNPACK), same quantized graph: a few output steps apart
    step = LiteRTModel(models.int8).output_details[0]["quantization"][0]
    diff = np.abs(micro - lite)
    assert diff.max() <= 16 * step
    assert diff.mean() <= step


@pytest.mark.tf
def test_tflm_matches_litert_reference_kernels(models):
    reference = LiteRTModel(models.int8, reference_kernels=True)
    assert reference.reference_kernels and not reference.uses_xnnpack
    assert "reference_kernels=True" in repr(reference)
    (micro,) = tflm_predict(models.int8, models.x, measure_arena(models.int8))
    (ref,) = reference.predict(models.x)
    step = reference.output_details[0]["quantization"][0]
    assert _argmax_agreement(micro, ref) == 1.0
    assert np.abs(micro - ref).max() <= 2 * step


@pytest.mark.tf
def test_tflm_runs_float32_too(models):
    (micro,) = tflm_predict(models.float32, models.x[:20], measure_arena(models.float32))
    np.testing.assert_allclose(micro, models.keras_out[:20], rtol=1e-4, atol=1e-5)


@pytest.mark.tf
def test_measured_arena_is_exact(models):
    measured = measure_arena(models.int8)
    assert measured > 0 and measured % 16 == 0
    assert arena_is_sufficient(models.int8, measured) is True
    assert arena_is_sufficient(models.int8, measured - 16) is False
    assert arena_is_sufficient(models.int8, measured // 2) is False
    assert arena_is_sufficient(models.int8, 100) is False  # below TFLM's own bookkeeping: no crash, a shortage
    # int8 activations take a quarter of float32's
    assert measure_arena(models.float32) > measured


@pytest.mark.tf
def test_tflm_too_small_arena_is_an_artifact_error(models):
    with pytest.raises(ArtifactError, match=r"1000-byte tensor arena is too small.*measure_arena"):
        tflm_predict(models.int8, models.x[:2], 1000)


@pytest.mark.tf
def test_tflm_wrong_input_shape_is_a_data_error(models):
    with pytest.raises(DataError, match=r"expects data of shape \(N, 32, 32, 1\)"):
        tflm_predict(models.int8, np.zeros((3, 32, 32), np.float32), 1 << 20)
