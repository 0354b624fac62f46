"""Knowledge distillation (Hinton et al. 2015): train a student on the teacher's softened outputs.

Per batch, inside the training step, the frozen teacher's logits t and the
student's logits s give

    loss = alpha * CE(y, softmax(s)) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))

with T the temperature (T^2 keeps the soft-target gradients on the same scale
as the hard-label ones when T changes). Without labels the hard term is
dropped (alpha is taken as 0): pure soft targets.

Models that end in a softmax are handled without changing them:
- a final `Softmax` layer (or `Activation("softmax")`): the logits are that
  layer's input, taken from the same layers, so training updates the model itself;
- a final layer with `activation="softmax"` (e.g. `Dense(10, activation="softmax")`):
  the logits are log(p). log(softmax(z)) = z - logsumexp(z) differs from z
  only by a constant per sample, and softmax(z / T) does not change when a
  constant is added to z, so both loss terms are exactly those of the true
  logits. Probabilities are clipped at 1e-30 first, so a class whose float32
  probability underflows to 0 contributes no gradient instead of NaN.

The student is the structurally pruned model, a user-given model, or a
width-scaled copy of the teacher (`"width:0.5"`: every prunable layer keeps
half its channels, freshly initialized). Its output shape must equal the
teacher's. Training runs through `train.fit` (same optimizer settings, early
stopping on the validation distillation loss, best weights restored).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebuild.errors import DataError, ModelError, ProfileError

LOG_EPSILON = 1e-30


# --------------------------------------------------------------------------- the loss

def distillation_loss_reference(student_logits: np.ndarray, teacher_logits: np.ndarray, labels: np.ndarray | None,
                                temperature: float, alpha: float) -> float:
    """The loss in plain NumPy (float64), batch mean; the TF version below must agree with it."""
    s = np.asarray(student_logits, np.float64)
    t = np.asarray(teacher_logits, np.float64)

    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    log_pt, log_ps = log_softmax(t / temperature), log_softmax(s / temperature)
    soft = (np.exp(log_pt) * (log_pt - log_ps)).sum(axis=-1).mean() * temperature ** 2
    if labels is None:
        return float(soft)
    hard = -log_softmax(s)[np.arange(len(s)), np.asarray(labels).reshape(-1)].mean()
    return float(alpha * hard + (1 - alpha) * soft)


def distillation_loss(student_logits: Any, teacher_logits: Any, labels: Any, temperature: float, alpha: float) -> Any:
    """The loss as a TF scalar (batch mean); `labels` None means pure soft targets."""
    from edgebuild._tf import tf

    tensorflow = tf()
    s = tensorflow.cast(student_logits, tensorflow.float32)
    t = tensorflow.stop_gradient(tensorflow.cast(teacher_logits, tensorflow.float32))
    log_pt = tensorflow.nn.log_softmax(t / temperature, axis=-1)
    log_ps = tensorflow.nn.log_softmax(s / temperature, axis=-1)
    soft = tensorflow.reduce_mean(tensorflow.reduce_sum(tensorflow.exp(log_pt) * (log_pt - log_ps), axis=-1))
    soft = soft * (temperature ** 2)
    if labels is None:
        return soft
    labels = tensorflow.reshape(tensorflow.cast(labels, tensorflow.int64), [-1])
    hard = tensorflow.reduce_mean(
        tensorflow.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=s))
    return alpha * hard + (1.0 - alpha) * soft


# --------------------------------------------------------------------------- logits of a Keras model

def logits_view(model: Any) -> tuple[Any, str]:
    """(callable x -> logits sharing `model`'s variables, how the logits were obtained)."""
    from edgebuild._tf import tf, tf_keras

    keras2, tensorflow = tf_keras(), tf()
    last = model.layers[-1] if getattr(model, "layers", None) else None
    kind = type(last).__name__ if last is not None else ""
    is_softmax_layer = kind == "Softmax" or (kind == "Activation" and _activation_name(last) == "softmax")
    if is_softmax_layer and getattr(model, "_is_graph_network", False) or (
            is_softmax_layer and isinstance(model, keras2.Sequential)):
        try:
            body = keras2.Model(model.inputs, last.input, name=f"{model.name}_logits")
            return body, f"input of the final {kind} layer '{last.name}'"
        except (ValueError, AttributeError):
            pass
    if last is not None and _activation_name(last) == "softmax" or _probabilities(model):
        def log_probs(x: Any, training: bool = False) -> Any:
            p = model(x, training=training)
            return tensorflow.math.log(tensorflow.maximum(tensorflow.cast(p, tensorflow.float32), LOG_EPSILON))

        log_probs.trainable_variables = model.trainable_variables  # type: ignore[attr-defined]
        return log_probs, "log of the output probabilities (exact up to a per-sample constant)"
    return model, "model outputs (already logits)"


def _activation_name(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", str(activation or ""))


def _probabilities(model: Any) -> bool:
    from edgebuild.converters.train import outputs_are_probabilities

    shape = tuple(int(d) if d is not None else 1 for d in model.inputs[0].shape[1:])
    sample = np.random.default_rng(0).random((8, *shape), dtype=np.float32)
    return outputs_are_probabilities(model, sample)


def _trainable(view: Any, model: Any) -> list:
    return list(getattr(view, "trainable_variables", None) or model.trainable_variables)


# --------------------------------------------------------------------------- the Keras training wrapper

def _distiller(keras2: Any, tensorflow: Any, student: Any, teacher: Any, temperature: float, alpha: float,
               labelled: bool) -> Any:
    student_logits, _ = logits_view(student)
    teacher_logits, _ = logits_view(teacher)
    variables = _trainable(student_logits, student)

    class Distiller(keras2.Model):
        """Wraps student and frozen teacher; `fit` sees one model whose loss is the distillation loss."""

        def __init__(self) -> None:
            super().__init__(name="distiller")
            self.student = student
            self.teacher = teacher
            self.loss_tracker = keras2.metrics.Mean(name="loss")
            self.accuracy_tracker = keras2.metrics.Mean(name="accuracy")
            self.agreement_tracker = keras2.metrics.Mean(name="agreement")

        @property
        def metrics(self) -> list:
            return [self.loss_tracker, self.accuracy_tracker, self.agreement_tracker]

        def call(self, x: Any, training: bool = False) -> Any:
            return self.student(x, training=training)

        def _step(self, data: Any, training: bool) -> dict:
            x, y = data[0], data[1]
            t = teacher_logits(x, training=False)
            with tensorflow.GradientTape() as tape:
                s = student_logits(x, training=training)
                loss = distillation_loss(s, t, y if labelled else None, temperature, alpha)
                if training and student.losses:
                    loss += tensorflow.add_n(student.losses)
            if training:
                grads = tape.gradient(loss, variables)
                self.optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
            predicted = tensorflow.argmax(s, axis=-1)
            self.loss_tracker.update_state(loss)
            self.agreement_tracker.update_state(
                tensorflow.cast(tensorflow.equal(predicted, tensorflow.argmax(t, axis=-1)), tensorflow.float32))
            if labelled:
                y_ids = tensorflow.reshape(tensorflow.cast(y, tensorflow.int64), [-1])
                self.accuracy_tracker.update_state(
                    tensorflow.cast(tensorflow.equal(predicted, y_ids), tensorflow.float32))
            results = {"loss": self.loss_tracker.result(), "agreement": self.agreement_tracker.result()}
            if labelled:
                results["accuracy"] = self.accuracy_tracker.result()
            return results

        def train_step(self, data: Any) -> dict:
            return self._step(data, training=True)

        def test_step(self, data: Any) -> dict:
            return self._step(data, training=False)

    teacher.trainable = False
    return Distiller()


# --------------------------------------------------------------------------- students

_WIDTH = re.compile(r"\s*width\s*:\s*([0-9]*\.?[0-9]+)\s*")


def make_student(teacher: Any, spec: Any, pruned: Any = None, round_to: int = 1) -> tuple[Any, str]:
    """(student model, description) for `spec`: a tf_keras model, "pruned", "width:F", or a model path."""
    from edgebuild._tf import tf_keras

    keras2 = tf_keras()
    if isinstance(spec, keras2.Model):
        student, what = spec, f"given model {spec.name}"
    elif spec in (None, "pruned"):
        if pruned is None:
            raise ProfileError("distillation.student = 'pruned' needs structured pruning ([pruning] kind = "
                               "'structured'); set kind, or give a student model or 'width:0.5'.")
        student, what = pruned, "the structurally pruned model"
    elif isinstance(spec, str) and (match := _WIDTH.fullmatch(spec)):
        factor = float(match.group(1))
        if not 0.0 < factor <= 1.0:
            raise ProfileError(f"distillation.student = {spec!r}: the width factor must be in (0, 1], e.g. "
                               "'width:0.5' keeps half the channels of every prunable layer.")
        from edgebuild.converters.pruning import PruningOptions, prune_structured

        options = PruningOptions(ratio=min(0.999, 1.0 - factor), round_to=round_to)
        student = prune_structured(teacher, options, copy_weights=False).model
        what = f"a width x{factor:g} copy of the teacher (fresh weights)"
    elif isinstance(spec, str):
        student, what = load_keras(spec), f"student model {spec}"
    else:
        raise ProfileError(f"distillation.student = {spec!r} is not understood; use 'pruned', 'width:0.5' or a "
                           "path to a .keras/.h5 model.")
    check_compatible(teacher, student)
    return student, what


def load_keras(path: Any) -> Any:
    """A tf_keras model from a path (Keras 3 files through the bridge)."""
    from pathlib import Path

    from edgebuild.converters.qat import model_for_training
    from edgebuild.model import load_model

    return model_for_training(load_model(Path(path)))[0]


def check_compatible(teacher: Any, student: Any) -> None:
    """Same input shape and same output shape, else a ModelError naming both."""
    def shape(tensors: Any) -> tuple:
        return tuple(tuple(t.shape[1:]) for t in tensors)

    if len(student.outputs) != 1 or len(teacher.outputs) != 1:
        raise ModelError(f"Distillation takes single-output models; the teacher has {len(teacher.outputs)} "
                         f"outputs and the student {len(student.outputs)}.")
    if shape(student.outputs) != shape(teacher.outputs):
        raise ModelError(
            f"The student's output shape {_text(student.outputs[0].shape)} differs from the teacher's "
            f"{_text(teacher.outputs[0].shape)}: distillation matches the two outputs class by class, so the "
            "student must predict the same classes. Give it the teacher's output layer size."
        )
    if shape(student.inputs) != shape(teacher.inputs):
        raise ModelError(f"The student's input shape {_text(student.inputs[0].shape)} differs from the teacher's "
                         f"{_text(teacher.inputs[0].shape)}; both must read the same samples.")


def _text(shape: Any) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


# --------------------------------------------------------------------------- the pass

@dataclass
class DistillationOutcome:
    model: Any  # the trained student (tf_keras)
    training: Any  # TrainingResult
    temperature: float
    alpha: float  # as used (0 without labels)
    labelled: bool
    student: str
    logits: dict[str, str]  # how the teacher's and student's logits were obtained

    def report(self) -> dict[str, Any]:
        """The report's `distillation` block."""
        return {"temperature": self.temperature, "alpha": self.alpha, "labels": self.labelled,
                "student": self.student, "logits": self.logits, "training": self.training.to_dict()}

    def to_dict(self) -> dict[str, Any]:
        return self.report()


def distill(teacher: Any, student: Any, train: tuple[np.ndarray, np.ndarray | None],
            val: tuple[np.ndarray, np.ndarray | None] | None, section: Any, training: Any, seed: int = 0,
            progress: Any = None, student_label: str = "", cancel: Any = None) -> DistillationOutcome:
    """Train `student` in place on `teacher`'s soft targets (see the module doc).

    `section` is a DistillationSection (temperature, alpha); `training` a TrainingSection. `val` is what
    early stopping watches (in a build: the early-stopping split, never the gate's validation samples);
    `cancel` (a threading.Event) stops training at the next batch end.
    """
    from edgebuild._tf import tf, tf_keras
    from edgebuild.converters.train import _as_class_ids, _check_range, fit, num_classes_of

    keras2, tensorflow = tf_keras(), tf()
    temperature, alpha = float(section.temperature), float(section.alpha)
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ProfileError(f"distillation.temperature = {temperature} must be a positive number (typically 2-8).")
    if not 0.0 <= alpha <= 1.0:
        raise ProfileError(f"distillation.alpha = {alpha} must be between 0 (soft targets only) and 1 (labels only).")
    check_compatible(teacher, student)
    if not student.trainable_weights:
        raise ModelError(f"The student {student.name} has no trainable weights (trainable=False); distillation "
                         "would not change it. Set model.trainable = True before saving it.")
    x = np.asarray(train[0], np.float32)
    labelled = train[1] is not None and (val is None or val[1] is not None)
    classes = num_classes_of(student)
    if labelled:
        y = _as_class_ids(train[1], x, "training")
        _check_range(y, classes, "training")
        if val is not None:
            _check_range(_as_class_ids(val[1], val[0], "validation"), classes, "validation")
    else:
        if alpha > 0 and train[1] is None:
            alpha = 0.0  # no labels: pure soft targets
        y = np.zeros(len(x), np.int64)
    if len(x) == 0:
        raise DataError("Distillation needs training samples; the training split is empty.")
    val_fit = None
    if val is not None and len(val[0]):
        val_fit = (val[0], val[1] if labelled else np.zeros(len(val[0]), np.int64))
    was_trainable = teacher.trainable
    distiller = _distiller(keras2, tensorflow, student, teacher, temperature, alpha, labelled)
    section_off = training.model_copy(update={"mixed_precision": "off"}) \
        if getattr(training, "mixed_precision", "off") != "off" else training
    try:
        result = fit(distiller, (x, y), val_fit, section_off, loss="mse", progress=progress, seed=seed, cancel=cancel)
    finally:
        teacher.trainable = was_trainable
    if result.cancelled:  # Ctrl-C: nothing more to compute; the stage raises BuildCancelled
        return DistillationOutcome(student, result, temperature, alpha if labelled else 0.0, labelled,
                                   student_label or student.name, {})
    logits = {"teacher": logits_view(teacher)[1], "student": logits_view(student)[1]}
    return DistillationOutcome(student, result, temperature, alpha if labelled else 0.0, labelled,
                               student_label or student.name, logits)


def distill_files(teacher_path: Any, student_spec: str, data_path: Any, out_dir: Any, section: Any, training: Any,
                  seed: int = 0, round_to: int = 1, progress: Any = None) -> dict[str, Any]:
    """`edgebuild distill`: teacher file + student (file or "width:F") + data -> trained student in `out_dir`."""
    from pathlib import Path

    from edgebuild.converters.macs import summary
    from edgebuild.converters.pruning import load_training_data, save_model, top1
    from edgebuild.converters.qat import model_for_training
    from edgebuild.model import load_model

    loaded = load_model(Path(teacher_path))
    train, held_out, val = load_training_data(data_path, loaded.input_shape, seed)
    teacher, _ = model_for_training(loaded, train[0][:8])
    student, what = make_student(teacher, student_spec, round_to=round_to)
    before = top1(student, val)
    outcome = distill(teacher, student, train, held_out, section, training, seed=seed, progress=progress,
                      student_label=what)
    report = outcome.report()
    report.update({"teacher": str(teacher_path), "teacher_summary": summary(teacher),
                   "student_summary": summary(student),
                   "accuracy": {"teacher": top1(teacher, val), "student_before": before,
                                "student_after": top1(student, val)}})
    report["files"] = save_model(student, out_dir, report, "distillation.json")
    return report
