"""The distillation loss (NumPy reference and TF) and the logits of a Keras model.

Per input, with the frozen teacher's logits t and the student's logits s:

    loss = alpha * CE(y, softmax(s)) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))

with T the temperature (T^2 keeps the soft-target gradients on the same scale
as the hard-label ones when T changes, Hinton et al. 2015). Inputs without a
label (teacher-labelled augmentations, unlabelled data) have only the soft
term; `masked_distillation_loss` averages the hard term over the labelled
inputs of a batch and the soft term over all of them.

Models that end in a softmax are handled without changing them:
- a final `Softmax` layer (or `Activation("softmax")`): the logits are that
  layer's input, taken from the same layers, so training updates the model itself;
- a final layer with `activation="softmax"` (e.g. `Dense(10, activation="softmax")`):
  the logits are log(p). log(softmax(z)) = z - logsumexp(z) differs from z
  only by a constant per sample, and softmax(z / T) does not change when a
  constant is added to z, so both loss terms are exactly those of the true
  logits. Probabilities are clipped at 1e-30 first, so a class whose float32
  probability underflows to 0 contributes no gradient instead of NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LOG_EPSILON = 1e-30


def distillation_loss_reference(
    student_logits: np.ndarray, teacher_logits: np.ndarray, labels: np.ndarray | None, temperature: float, alpha: float
) -> float:
    """The loss in plain NumPy (float64), batch mean; the TF version below must agree with it."""
    s = np.asarray(student_logits, np.float64)
    t = np.asarray(teacher_logits, np.float64)

    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    log_pt, log_ps = log_softmax(t / temperature), log_softmax(s / temperature)
    soft = (np.exp(log_pt) * (log_pt - log_ps)).sum(axis=-1).mean() * temperature**2
    if labels is None:
        return float(soft)
    hard = -log_softmax(s)[np.arange(len(s)), np.asarray(labels).reshape(-1)].mean()
    return float(alpha * hard + (1 - alpha) * soft)


def _soft_terms(tensorflow: Any, s: Any, t: Any, temperature: float) -> Any:
    """T^2 * KL(softmax(t/T) || softmax(s/T)) per input."""
    log_pt = tensorflow.nn.log_softmax(t / temperature, axis=-1)
    log_ps = tensorflow.nn.log_softmax(s / temperature, axis=-1)
    return tensorflow.reduce_sum(tensorflow.exp(log_pt) * (log_pt - log_ps), axis=-1) * (temperature**2)


def distillation_loss(student_logits: Any, teacher_logits: Any, labels: Any, temperature: float, alpha: float) -> Any:
    """The loss as a TF scalar (batch mean); `labels` None means pure soft targets."""
    from edgebuild._tf import tf

    tensorflow = tf()
    s = tensorflow.cast(student_logits, tensorflow.float32)
    t = tensorflow.stop_gradient(tensorflow.cast(teacher_logits, tensorflow.float32))
    soft = tensorflow.reduce_mean(_soft_terms(tensorflow, s, t, temperature))
    if labels is None:
        return soft
    labels = tensorflow.reshape(tensorflow.cast(labels, tensorflow.int64), [-1])
    hard = tensorflow.reduce_mean(tensorflow.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=s))
    return alpha * hard + (1.0 - alpha) * soft


def masked_distillation_loss(
    student_logits: Any, teacher_logits: Any, labels: Any, temperature: float, alpha: float
) -> Any:
    """Like `distillation_loss`, but `labels` < 0 marks inputs without a label (soft term only).

    Hard term: mean over the labelled inputs (0 when there are none); soft term: mean over all inputs. With
    every label present this equals `distillation_loss`.
    """
    from edgebuild._tf import tf

    tensorflow = tf()
    s = tensorflow.cast(student_logits, tensorflow.float32)
    t = tensorflow.stop_gradient(tensorflow.cast(teacher_logits, tensorflow.float32))
    soft = tensorflow.reduce_mean(_soft_terms(tensorflow, s, t, temperature))
    labels = tensorflow.reshape(tensorflow.cast(labels, tensorflow.int64), [-1])
    mask = tensorflow.cast(labels >= 0, tensorflow.float32)
    ce = tensorflow.nn.sparse_softmax_cross_entropy_with_logits(labels=tensorflow.maximum(labels, 0), logits=s)
    hard = tensorflow.reduce_sum(ce * mask) / tensorflow.maximum(tensorflow.reduce_sum(mask), 1.0)
    return alpha * hard + (1.0 - alpha) * soft


def logits_view(model: Any) -> tuple[Any, str]:
    """(callable x -> logits sharing `model`'s variables, how the logits were obtained)."""
    from edgebuild._tf import tf, tf_keras

    keras2, tensorflow = tf_keras(), tf()
    last = model.layers[-1] if getattr(model, "layers", None) else None
    kind = type(last).__name__ if last is not None else ""
    is_softmax_layer = kind == "Softmax" or (kind == "Activation" and _activation_name(last) == "softmax")
    if (
        last is not None
        and is_softmax_layer
        and (getattr(model, "_is_graph_network", False) or isinstance(model, keras2.Sequential))
    ):
        try:
            body = keras2.Model(model.inputs, last.input, name=f"{model.name}_logits")
            return body, f"input of the final {kind} layer '{last.name}'"
        except (ValueError, AttributeError):
            pass
    if (last is not None and _activation_name(last) == "softmax") or _probabilities(model):

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
