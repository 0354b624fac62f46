"""The distillation pass: train a student on a frozen teacher's soft outputs, the teacher as an oracle.

Each training step shows the student the batch's inputs plus `copies`
augmented views of each (see `oracle`); the teacher labels every one, the
loss is `masked_distillation_loss` (hard term on the labelled originals, soft
term on everything). Training runs through `train.fit`: the `[training]`
section's epoch ceiling, early stopping on the held-out split's distillation
loss (originals only, never augmented) with the best weights restored, and its
learning-rate schedule. The report counts the inputs every epoch really saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebuild.errors import DataError, ModelError, ProfileError

from .loss import logits_view, masked_distillation_loss
from .oracle import Augmentation, make_augmenter, resolve
from .students import check_compatible

# Defaults chosen by the grid in docs/distillation.md (width:0.25 and width:0.5 students of a residual digits
# teacher and a Conv1D sequence teacher, 3 seeds each).
DEFAULT_TEMPERATURE = 4.0
DEFAULT_ALPHA = 0.5
DEFAULT_AUGMENT = "auto"  # what `edgebuild distill` uses
LIBRARY_AUGMENT = "none"  # `distill()` without `augment` (pruning recovery, builds): as before issue 19, see docs
COUNTERS = ("inputs_labelled", "inputs_unlabelled", "inputs_augmented", "inputs_mixup")


@dataclass
class DistillationOutcome:
    model: Any  # the trained student (tf_keras)
    training: Any  # TrainingResult
    temperature: float
    alpha: float  # as used (0 without labels)
    labelled: bool
    student: str
    logits: dict[str, str]  # how the teacher's and student's logits were obtained
    augmentation: dict[str, Any] = field(default_factory=dict)
    inputs_per_epoch: dict[str, int] = field(default_factory=dict)
    batchnorm: dict[str, Any] = field(default_factory=dict)  # the recalibration after augmented training

    def report(self) -> dict[str, Any]:
        """The report's `distillation` block."""
        return {
            "temperature": self.temperature,
            "alpha": self.alpha,
            "labels": self.labelled,
            "student": self.student,
            "logits": self.logits,
            "augmentation": self.augmentation,
            "inputs_per_epoch": self.inputs_per_epoch,
            "batchnorm_recalibration": self.batchnorm,
            "training": self.training.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        return self.report()


def _distiller(
    keras2: Any,
    tensorflow: Any,
    student: Any,
    teacher: Any,
    temperature: float,
    alpha: float,
    labelled: bool,
    augment: Any,
) -> Any:
    student_logits, _ = logits_view(student)
    teacher_logits, _ = logits_view(teacher)
    variables = list(getattr(student_logits, "trainable_variables", None) or student.trainable_variables)

    class Distiller(keras2.Model):
        """Wraps student and frozen teacher; `fit` sees one model whose loss is the distillation loss."""

        def __init__(self) -> None:
            super().__init__(name="distiller")
            self.student = student
            self.teacher = teacher
            self.loss_tracker = keras2.metrics.Mean(name="loss")
            self.accuracy_tracker = keras2.metrics.Mean(name="accuracy")
            self.agreement_tracker = keras2.metrics.Mean(name="agreement")
            self.counters = [keras2.metrics.Sum(name=name) for name in COUNTERS]

        @property
        def metrics(self) -> list:
            return [self.loss_tracker, self.accuracy_tracker, self.agreement_tracker, *self.counters]

        def call(self, x: Any, training: bool = False) -> Any:
            return self.student(x, training=training)

        def _step(self, data: Any, training: bool) -> dict:
            x, y = data[0], tensorflow.reshape(tensorflow.cast(data[1], tensorflow.int64), [-1])
            n = tensorflow.shape(x)[0]
            inputs, targets, mixed = x, y, None
            if training and augment is not None:
                views, mixed = augment(x)
                inputs = tensorflow.concat([x, views], axis=0)
                targets = tensorflow.concat([y, -tensorflow.ones([tensorflow.shape(views)[0]], tensorflow.int64)], 0)
            t = teacher_logits(inputs, training=False)
            with tensorflow.GradientTape() as tape:
                s = student_logits(inputs, training=training)
                loss = masked_distillation_loss(s, t, targets, temperature, alpha)
                if training and student.losses:
                    loss += tensorflow.add_n(student.losses)
            if training:
                grads = tape.gradient(loss, variables)
                self.optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables, strict=True) if g is not None])
            predicted = tensorflow.argmax(s[:n], axis=-1)
            self.loss_tracker.update_state(loss)
            self.agreement_tracker.update_state(
                tensorflow.cast(tensorflow.equal(predicted, tensorflow.argmax(t[:n], axis=-1)), tensorflow.float32)
            )
            has_label = tensorflow.cast(y >= 0, tensorflow.float32)
            results = {"loss": self.loss_tracker.result(), "agreement": self.agreement_tracker.result()}
            if labelled:
                self.accuracy_tracker.update_state(
                    tensorflow.cast(tensorflow.equal(predicted, y), tensorflow.float32), sample_weight=has_label
                )
                results["accuracy"] = self.accuracy_tracker.result()
            if training:
                labelled_count = tensorflow.reduce_sum(has_label)
                counts = (
                    labelled_count,
                    tensorflow.cast(n, tensorflow.float32) - labelled_count,
                    tensorflow.cast(tensorflow.shape(inputs)[0] - n, tensorflow.float32),
                    tensorflow.constant(0.0) if mixed is None else mixed,
                )
                for counter, value in zip(self.counters, counts, strict=True):
                    counter.update_state(value)
                    results[counter.name] = counter.result()
            return results

        def train_step(self, data: Any) -> dict:
            return self._step(data, training=True)

        def test_step(self, data: Any) -> dict:
            return self._step(data, training=False)

    teacher.trainable = False
    return Distiller()


def distill(
    teacher: Any,
    student: Any,
    train: tuple[np.ndarray, np.ndarray | None],
    val: tuple[np.ndarray, np.ndarray | None] | None,
    section: Any,
    training: Any,
    seed: int = 0,
    progress: Any = None,
    student_label: str = "",
    cancel: Any = None,
    *,
    augment: Any = None,
    unlabelled: np.ndarray | None = None,
    recalibrate: bool = True,
) -> DistillationOutcome:
    """Train `student` in place on `teacher`'s soft targets (see the module doc).

    `section` is a DistillationSection (temperature, alpha; `augment` when it has one); `training` a
    TrainingSection. `val` is what early stopping watches (in a build: the early-stopping split, never the
    gate's validation samples); `cancel` (a threading.Event) stops training at the next batch end.
    `augment`: None (the section's `augment` if it has one, else "none": unchanged for older callers), "auto",
    "none", "image", "sequence", "vector" or an `oracle.Augmentation`. `unlabelled`: extra inputs (model
    input shape) the teacher alone labels.
    `recalibrate`: after training on augmented views, re-estimate the student's BatchNorm statistics on the
    clean training inputs (kept when the early-stopping loss does not rise).
    """
    from edgebuild._tf import tf, tf_keras
    from edgebuild.converters.train import _as_class_ids, _check_range, check_training_data, fit, num_classes_of

    keras2, tensorflow = tf_keras(), tf()
    temperature, alpha = float(section.temperature), float(section.alpha)
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ProfileError(f"distillation.temperature = {temperature} must be a positive number (typically 2-8).")
    if not 0.0 <= alpha <= 1.0:
        raise ProfileError(f"distillation.alpha = {alpha} must be between 0 (soft targets only) and 1 (labels only).")
    check_compatible(teacher, student)
    if not student.trainable_weights:
        raise ModelError(
            f"The student {student.name} has no trainable weights (trainable=False); distillation "
            "would not change it. Set model.trainable = True before saving it."
        )
    x = np.asarray(train[0], np.float32)
    if len(x) == 0:
        raise DataError("Distillation needs training samples; the training split is empty.")
    train_y, val_y = train[1], (None if val is None else val[1])
    labelled = train_y is not None and (val is None or val_y is not None)
    classes = num_classes_of(student)
    if labelled and train_y is not None:
        y = _as_class_ids(train_y, x, "training")
        _check_range(y, classes, "training")
        if val is not None and val_y is not None:
            _check_range(_as_class_ids(val_y, val[0], "validation"), classes, "validation")
    else:
        alpha = 0.0  # no labels (or none to stop early on): pure soft targets
        y = np.full(len(x), -1, np.int64)
    check_training_data((x, np.zeros(len(x), np.int64)), None, None)  # enough samples, as `fit` checks
    if unlabelled is not None and len(unlabelled):
        extra = np.asarray(unlabelled, np.float32)
        if extra.shape[1:] != x.shape[1:]:
            raise DataError(
                f"The unlabelled inputs have shape {extra.shape[1:]}, the training inputs "
                f"{x.shape[1:]}; both must be shaped like the model input."
            )
        x, y = np.concatenate([x, extra]), np.concatenate([y, np.full(len(extra), -1, np.int64)])
    val_fit = None
    if val is not None and len(val[0]):
        vy = _as_class_ids(val_y, val[0], "validation") if val_y is not None and labelled else None
        vy = vy if vy is not None else np.full(len(val[0]), -1, np.int64)
        val_fit = (np.asarray(val[0], np.float32), vy)
    spec = augment if augment is not None else getattr(section, "augment", None) or LIBRARY_AUGMENT
    aug = resolve(spec, tuple(student.inputs[0].shape))
    augmenter = make_augmenter(aug, tuple(student.inputs[0].shape), float(np.std(x[:4096]))) if aug.active else None
    was_trainable = teacher.trainable
    distiller = _distiller(keras2, tensorflow, student, teacher, temperature, alpha, labelled, augmenter)
    section_off = (
        training.model_copy(update={"mixed_precision": "off"})
        if getattr(training, "mixed_precision", "off") != "off"
        else training
    )
    batchnorm: dict[str, Any] = {}
    try:
        result = fit(
            distiller,
            (x, y),
            val_fit,
            section_off,
            loss="mse",
            progress=progress,
            seed=seed,
            cancel=cancel,
            labels_checked=True,
        )
        if aug.active and recalibrate and not result.cancelled:
            batchnorm = _recalibrate(distiller, student, x, val_fit)
    finally:
        teacher.trainable = was_trainable
    logits = {} if result.cancelled else {"teacher": logits_view(teacher)[1], "student": logits_view(student)[1]}
    return DistillationOutcome(
        student,
        result,
        temperature,
        alpha if labelled else 0.0,
        labelled,
        student_label or student.name,
        logits,
        aug.to_dict(),
        _inputs_seen(result),
        batchnorm,
    )


def _recalibrate(distiller: Any, student: Any, x: np.ndarray, val: tuple | None) -> dict[str, Any]:
    """BatchNorm statistics from the clean training inputs (see `recalibrate_batchnorm`), kept only when the
    early-stopping loss does not get worse (always kept without an early-stopping split)."""
    before_weights = student.get_weights()
    before = float(distiller.evaluate(*val, batch_size=256, verbose=0, return_dict=True)["loss"]) if val else None
    layers = recalibrate_batchnorm(student, x)
    if not layers:
        return {}
    after = float(distiller.evaluate(*val, batch_size=256, verbose=0, return_dict=True)["loss"]) if val else None
    kept = before is None or after is None or after <= before
    if not kept:
        student.set_weights(before_weights)
    return {"layers": layers, "kept": kept, "early_stopping_loss": {"before": before, "after": after}}


def _inputs_seen(result: Any) -> dict[str, int]:
    """Inputs the student saw in the first full epoch, by kind (counted during training, not computed)."""
    if not result.history:
        return {}
    record = result.history[0]
    seen = {name.removeprefix("inputs_"): round(record.get(name, 0)) for name in COUNTERS}
    seen["total"] = seen["labelled"] + seen["unlabelled"] + seen["augmented"]
    return seen


def augmentation_of(spec: Any, input_shape: tuple) -> Augmentation:
    """The augmentation `distill` would use for `spec` and a model input shape."""
    return resolve(spec, input_shape)


def recalibrate_batchnorm(model: Any, x: np.ndarray, batch_size: int = 256) -> int:
    """Set every BatchNormalization layer's moving mean and variance to the exact statistics of its inputs
    on `x` (clean training inputs), layer by layer in graph order; returns how many layers were set.

    Training on augmented and mixed views moves the statistics away from those of real inputs; this puts
    them back where inference needs them. Functional/Sequential tf_keras models only (others: 0, unchanged).
    """
    from edgebuild._tf import tf_keras

    keras2 = tf_keras()
    layers = [layer for layer in getattr(model, "layers", []) if type(layer).__name__ == "BatchNormalization"]
    if not layers or not getattr(model, "_is_graph_network", False):
        return 0
    x = np.asarray(x, np.float32)
    done = 0
    for layer in layers:
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        try:
            probe = keras2.Model(model.inputs, layer.input)
        except (ValueError, AttributeError):
            continue
        total, total_sq, count = 0.0, 0.0, 0
        for start in range(0, len(x), batch_size):
            h = np.asarray(probe(x[start : start + batch_size], training=False), np.float64)
            h = np.moveaxis(h, axis, -1).reshape(-1, h.shape[axis])
            total, total_sq, count = total + h.sum(0), total_sq + (h * h).sum(0), count + len(h)
        mean = np.asarray(total, np.float64) / count
        variance = np.maximum(np.asarray(total_sq, np.float64) / count - mean * mean, 0.0)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))
        done += 1
    return done
