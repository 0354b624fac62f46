"""Training-pass checks that need no TensorFlow: data checks, the early-stopping split, recovery settings,
precision settings, audit messages, bridge helpers."""

from __future__ import annotations

import numpy as np
import pytest

from edgebuild.converters import precision
from edgebuild.converters.keras_bridge import _dtype_name, _max_scaled_diff, _refs, _resolve
from edgebuild.converters.qat import LayerAudit, refusal_message
from edgebuild.converters.train import (
    MIN_TRAINING_SAMPLES,
    TrainingResult,
    check_training_data,
    plateau_patience,
    recovery_settings,
)
from edgebuild.data import EARLY_STOPPING_FRACTION, MIN_EARLY_STOPPING_POOL, split
from edgebuild.errors import DataError
from edgebuild.profiles.schema import DataSection, TrainingSection

X = np.zeros((40, 4, 4, 1), np.float32)


def test_labels_are_required() -> None:
    with pytest.raises(DataError, match=r"Training needs labels.*no 'y'.*quantization.method=ptq"):
        check_training_data((X, None), None, 10)


def test_labels_must_fit_the_model_outputs() -> None:
    y = np.arange(40) % 12
    with pytest.raises(DataError, match=r"training labels go up to 11 but the model has 10 output classes.*0\.\.9"):
        check_training_data((X, y), None, 10)
    with pytest.raises(DataError, match="negative class ids"):
        check_training_data((X, y - 1), None, 20)
    with pytest.raises(DataError, match="validation labels go up to 11"):
        check_training_data((X, y % 10), (X[:5], y[:5] + 7), 10)


def test_too_few_samples_and_unlabelled_validation() -> None:
    few = MIN_TRAINING_SAMPLES - 1
    with pytest.raises(DataError, match=rf"Only {few} training samples.*at least {MIN_TRAINING_SAMPLES}"):
        check_training_data((X[:few], np.zeros(few, np.int64)), None, 10)
    with pytest.raises(DataError, match="validation data has no labels"):
        check_training_data((X, np.zeros(40, np.int64)), (X[:4], None), 10)
    with pytest.raises(DataError, match="40 samples but 3 labels"):
        check_training_data((X, np.zeros(3, np.int64)), None, 10)


def test_one_hot_and_float_labels_become_class_ids() -> None:
    one_hot = np.eye(10, dtype=np.float32)[np.arange(40) % 10]
    labels, val = check_training_data((X, one_hot), (X[:3], np.array([1.0, 2.0, 3.0])), 10)
    assert labels.tolist() == (np.arange(40) % 10).tolist() and val.tolist() == [1, 2, 3]
    with pytest.raises(DataError, match="not whole numbers"):
        check_training_data((X, np.full(40, 0.5)), None, 10)


def test_precision_settings() -> None:
    assert precision.policy_for("off") is None
    assert precision.policy_for("float16") == "mixed_float16"
    assert precision.policy_for("bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="auto, float16, bfloat16 or off"):
        precision.policy_for("half")


def test_refusal_message_lists_layers_and_choices() -> None:
    text = refusal_message(
        [
            LayerAudit("lstm", "LSTM", "refused", "no 8-bit quantization config in TFMOT"),
            LayerAudit("ln", "LayerNormalization", "refused", "no 8-bit quantization config in TFMOT"),
        ]
    )
    assert "cannot handle 2 layer(s)" in text
    assert "  - lstm (LSTM): no 8-bit quantization config in TFMOT" in text
    assert "  - ln (LayerNormalization)" in text
    assert "remove or replace these layers" in text and "--set quantization.method=ptq" in text


def test_training_result_is_report_ready() -> None:
    result = TrainingResult(
        epochs_run=3,
        epochs_limit=10,
        stopped_early=True,
        stop_reason="early stopping",
        best_epoch=1,
        monitor="val_loss",
        history=[{"epoch": 1, "loss": 1.0}],
    )
    block = result.to_dict()
    assert block["epochs_run"] == 3 and block["stopped_early"] and block["history"][0]["loss"] == 1.0


def test_bridge_config_helpers() -> None:
    assert _dtype_name({"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}) == "mixed_float16"
    assert _dtype_name("float32") == "float32"
    assert _refs(["input_layer", 0, 0]) == [["input_layer", 0, 0]]
    assert _refs([["a", 0, 0], ["b", 0, 1]]) == [["a", 0, 0], ["b", 0, 1]]
    ref = {"class_name": "__keras_tensor__", "config": {"keras_history": ["conv", 0, 0]}}
    assert _resolve(([ref, ref],), {("conv", 0, 0): "T"}) == (["T", "T"],)
    assert _max_scaled_diff([np.ones(3)], [np.ones(3) + 1e-6]) < 1e-5
    assert _max_scaled_diff([np.ones(3)], [np.ones(4)]) == float("inf")


@pytest.mark.parametrize(
    ("n", "calibration", "hold_out"), [(1797, 200, True), (597, 200, True), (400, 100, False), (20_000, 200, True)]
)
def test_the_early_stopping_split_is_carved_from_training_and_never_the_gates(n, calibration, hold_out) -> None:
    section = DataSection(seed=5)
    s = split(n, section, calibration, hold_out_validation=hold_out)
    parts = [
        set(s.validation.tolist()),
        set(s.calibration.tolist()),
        set(s.early_stopping.tolist()),
        set(s.training.tolist()),
    ]
    assert sum(len(p) for p in parts) == n and set().union(*parts) == set(range(n))  # disjoint and complete
    gate = parts[0]
    assert not gate & parts[2] and not gate & parts[3]  # the gate's samples: neither trained on nor stopped on
    pool = n - len(gate) - len(s.calibration)
    expected = min(int(np.ceil(pool * EARLY_STOPPING_FRACTION)), section.max_validation_samples)
    assert len(s.early_stopping) == expected > 0
    assert s.describe() == {
        "validation": len(gate),
        "calibration": len(s.calibration),
        "early_stopping": expected,
        "training": pool - expected,
    }
    # the gate's and the quantizer's samples are the same as without an early-stopping split
    plain = split(n, section, calibration, hold_out_validation=hold_out, early_stopping_fraction=0.0)
    assert np.array_equal(plain.validation, s.validation) and np.array_equal(plain.calibration, s.calibration)
    assert len(plain.early_stopping) == 0 and set(plain.training.tolist()) == parts[2] | parts[3]


def test_too_little_data_for_an_early_stopping_split() -> None:
    s = split(100 + MIN_EARLY_STOPPING_POOL - 1, DataSection(), 100, hold_out_validation=False)
    assert len(s.early_stopping) == 0 and len(s.training) == MIN_EARLY_STOPPING_POOL - 1  # training watches its loss
    s = split(100 + MIN_EARLY_STOPPING_POOL, DataSection(), 100, hold_out_validation=False)
    assert len(s.early_stopping) == int(np.ceil(MIN_EARLY_STOPPING_POOL * EARLY_STOPPING_FRACTION))


def test_recovery_has_its_own_defaults_and_qat_keeps_its_own() -> None:
    qat = TrainingSection()
    assert (qat.epochs, qat.learning_rate, qat.early_stopping, qat.schedule) == (5, 1e-4, 0, "constant")
    recovery = recovery_settings(qat)
    assert (recovery.epochs, recovery.learning_rate, recovery.early_stopping, recovery.schedule) == (
        100,
        2e-3,
        12,
        "plateau",
    )
    assert recovery.batch_size == qat.batch_size and recovery.time_budget == qat.time_budget == 1800.0
    mine = recovery_settings(
        TrainingSection(recovery_epochs=3, recovery_learning_rate=0.01, recovery_schedule="cosine")
    )
    assert (mine.epochs, mine.learning_rate, mine.schedule) == (3, 0.01, "cosine")
    assert [plateau_patience(p) for p in (8, 9, 0, 1)] == [2, 3, 2, 1]
