"""Knowledge distillation: the loss in TF against hand-checked numbers, softmax handling, students, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import digits
from edgebuild.errors import ModelError, ProfileError

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def keras2():
    from edgebuild._tf import tf_keras

    return tf_keras()


@pytest.fixture(scope="module")
def split(digits_data):
    d = digits_data
    return {"train": (d.train_x[:900], d.train_y[:900]), "val": (d.train_x[900:1200], d.train_y[900:1200]),
            "test": (d.test_x, d.test_y)}


@pytest.fixture(scope="module")
def teacher(keras2, split):
    keras2.utils.set_random_seed(0)
    return digits.train(digits.build_residual(keras2), *split["train"], epochs=8)


def test_tf_loss_matches_the_hand_checked_example() -> None:
    from edgebuild.converters.distill import distillation_loss, distillation_loss_reference

    teacher, student, labels = np.array([[math.log(3), 0.0]]), np.zeros((1, 2)), np.array([0])
    r3 = math.sqrt(3)
    kl_t2 = sum(p * math.log(p / 0.5) for p in (r3 / (r3 + 1), 1 / (r3 + 1)))
    expected = 0.25 * math.log(2) + 0.75 * 4 * kl_t2
    assert float(distillation_loss(student, teacher, labels, 2.0, 0.25)) == pytest.approx(expected, rel=1e-6)
    assert float(distillation_loss(student, teacher, None, 2.0, 0.25)) == pytest.approx(4 * kl_t2, rel=1e-6)
    rng = np.random.default_rng(0)
    s, t, y = rng.normal(size=(32, 10)) * 3, rng.normal(size=(32, 10)) * 3, rng.integers(0, 10, 32)
    for temperature, alpha in ((1.0, 0.0), (4.0, 0.5), (8.0, 0.9)):
        assert float(distillation_loss(s, t, y, temperature, alpha)) == pytest.approx(
            distillation_loss_reference(s, t, y, temperature, alpha), rel=1e-5)


def test_softmax_outputs_give_logits_equivalent_to_the_true_ones(keras2, teacher) -> None:
    """log(p) differs from the pre-softmax logits by a per-sample constant: the loss is the same."""
    from edgebuild.converters.distill import distillation_loss_reference, logits_view

    x = np.random.default_rng(2).random((16, 32, 32, 1), dtype=np.float32)
    logits, how = logits_view(teacher)
    assert "log of the output probabilities" in how
    dense = teacher.layers[-1]
    true_logits = (keras2.Model(teacher.inputs, dense.input)(x).numpy() @ dense.kernel.numpy()) + dense.bias.numpy()
    got = np.asarray(logits(x))
    shift = got - true_logits
    np.testing.assert_allclose(shift, shift[:, :1].repeat(10, axis=1), atol=1e-3)
    s = np.random.default_rng(3).normal(size=(16, 10))
    assert distillation_loss_reference(s, got, None, 4.0, 0) == pytest.approx(
        distillation_loss_reference(s, true_logits, None, 4.0, 0), rel=1e-4)
    cnn = digits.build_cnn(keras2)  # ends in a Softmax layer: its input is used
    _, how = logits_view(cnn)
    assert "input of the final Softmax layer" in how


def test_distill_into_pruned_student_with_and_without_labels(keras2, teacher, split) -> None:
    from edgebuild.converters.distill import distill
    from edgebuild.converters.pruning import PruningOptions, prune_structured, top1
    from edgebuild.profiles.schema import DistillationSection, TrainingSection

    training = TrainingSection(epochs=6, learning_rate=2e-3, early_stopping=2)
    section = DistillationSection(enabled=True, temperature=4.0, alpha=0.3)
    student = prune_structured(teacher, PruningOptions(ratio=0.5)).model
    before = top1(student, split["val"])
    outcome = distill(teacher, student, split["train"], split["val"], section, training)
    after = top1(student, split["val"])
    assert after > before + 30 and after >= top1(teacher, split["val"]) - 15
    report = outcome.report()
    assert report["labels"] is True and report["alpha"] == 0.3
    assert {"loss", "accuracy", "agreement", "val_loss"} <= set(report["training"]["history"][0])

    unlabeled = prune_structured(teacher, PruningOptions(ratio=0.5)).model
    outcome = distill(teacher, unlabeled, (split["train"][0], None), (split["val"][0], None), section,
                      training.model_copy(update={"epochs": 3}))
    assert outcome.report()["labels"] is False and outcome.alpha == 0.0
    assert "accuracy" not in outcome.training.history[0]
    assert top1(unlabeled, split["val"]) > 50  # learned from soft targets alone


def test_width_scaled_student(teacher) -> None:
    from edgebuild.converters.distill import make_student
    from edgebuild.converters.macs import summary

    student, what = make_student(teacher, "width:0.5")
    assert "width x0.5" in what
    assert summary(student)["macs"] * 2 <= summary(teacher)["macs"]
    assert student.outputs[0].shape[-1] == 10
    with pytest.raises(ProfileError, match=r"width factor must be in \(0, 1\]"):
        make_student(teacher, "width:1.5")
    with pytest.raises(ProfileError, match=r"'pruned' needs structured pruning"):
        make_student(teacher, "pruned")


def test_mismatched_student_is_a_clear_error(keras2, teacher, split) -> None:
    from edgebuild.converters.distill import distill
    from edgebuild.profiles.schema import DistillationSection, TrainingSection

    layers = keras2.layers
    student = keras2.Sequential([keras2.Input((32, 32, 1)), layers.Flatten(), layers.Dense(5)])
    with pytest.raises(ModelError, match=r"student's output shape \(\?, 5\) differs from the teacher's \(\?, 10\)"):
        distill(teacher, student, split["train"], split["val"], DistillationSection(enabled=True),
                TrainingSection(epochs=1))
