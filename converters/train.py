"""The one training loop every training-time pass uses: QAT, pruning recovery, distillation, sparsity.

`fit` checks the data before any training starts (labels present, in range,
enough samples), trains a tf_keras model with a `[training]` section's
settings, stops early when the monitored loss stops improving for
`early_stopping` epochs (0 turns it off) and restores the best weights. It
returns a `TrainingResult` whose `to_dict()` is the report's `training` block.

Early stopping monitors `val_loss` on the data passed as `val` (in a build:
the early-stopping split, carved from the training samples; never the
validation samples the accuracy gate scores), else the training `loss`. An
epoch counts as an improvement when the monitored loss falls by more than
`MIN_DELTA`.

Learning-rate schedules (`schedule`):
- "constant": the learning rate throughout;
- "cosine": per epoch, from the learning rate down to `MIN_LR_FACTOR` of it
  over the epoch ceiling (suits a fixed number of epochs);
- "plateau": multiplied by `PLATEAU_FACTOR` whenever the monitored loss has
  not improved for `plateau_patience(early_stopping)` epochs (at least one
  reduction always comes before early stopping), down to `MIN_LR_FACTOR` of
  it. Suits "train until it converges" with a generous epoch ceiling.

Two things end training between batches (within one batch, not at the end of
the epoch): the `cancel` event (Ctrl-C in a build; the stage then raises
BuildCancelled) and the time budget (`time_budget` seconds per training pass,
0 = none; the result says `stopped_by = "time_budget"` and keeps the best
weights so far).

Recovery after pruning or for a student (`recovery_settings`) uses the
`recovery_*` fields of `[training]`: a higher learning rate, a generous epoch
ceiling, patience and the plateau schedule, because the weights after surgery
are far from any optimum, while QAT starts from a trained model and uses the
plain fields (few epochs at a small learning rate).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgebuild.errors import DataError, ProfileError

MIN_TRAINING_SAMPLES = 16
MIN_DELTA = 1e-4
OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "plateau")
PLATEAU_FACTOR = 0.3
MIN_LR_FACTOR = 1e-3  # the lowest learning rate a schedule reaches, as a share of the initial one
STOP_REASONS = ("epoch_limit", "early_stopping", "time_budget", "cancelled")

Progress = Callable[[dict[str, Any]], None]  # called after each epoch with that epoch's record


@dataclass
class TrainingResult:
    epochs_run: int
    epochs_limit: int
    stopped_early: bool
    stop_reason: str
    best_epoch: int  # 1-based; the weights of this epoch are the ones kept
    monitor: str  # "val_loss" or "loss"
    history: list[dict[str, float]] = field(default_factory=list)  # one record per epoch
    seconds: float = 0.0
    samples: dict[str, int] = field(default_factory=dict)  # {"training": n, "early_stopping": m}
    optimizer: str = "adam"
    mixed_precision: str = "off"  # the policy actually used for training, or "off"
    learning_rate: float = 0.0  # initial
    schedule: str = "constant"
    final_learning_rate: float = 0.0
    time_budget_s: float = 0.0  # 0 = none
    stopped_by: str = "epoch_limit"  # one of STOP_REASONS

    @property
    def cancelled(self) -> bool:
        return self.stopped_by == "cancelled"

    def to_dict(self) -> dict[str, Any]:
        """The report's `training` block (JSON-ready)."""
        return asdict(self)


def recovery_settings(section: Any) -> Any:
    """The `[training]` section as recovery after surgery sees it: `recovery_*` in place of the QAT fields.

    Builds call this for pruning recovery, sparsity and distillation; the `prune`/`distill` commands pass
    the section their flags made as it is. Objects without `recovery_*` fields are returned unchanged.
    """
    if getattr(section, "recovery_epochs", None) is None:
        return section
    return section.model_copy(
        update={
            "epochs": section.recovery_epochs,
            "learning_rate": section.recovery_learning_rate,
            "early_stopping": section.recovery_early_stopping,
            "schedule": section.recovery_schedule,
        }
    )


def plateau_patience(early_stopping: int) -> int:
    """Epochs without improvement before the plateau schedule lowers the learning rate."""
    return max(1, early_stopping // 3) if early_stopping else 2


def check_training_data(
    train: tuple[np.ndarray, np.ndarray | None],
    val: tuple[np.ndarray, np.ndarray | None] | None,
    num_classes: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels present, integer class ids in range, enough samples: DataError otherwise. Returns (train_y, val_y)."""
    x, y = train
    if y is None:
        raise DataError(
            "Training needs labels, but the training data has no 'y'. Save it with "
            "np.savez(path, x=inputs, y=labels) (integer class ids 0..N-1), or use "
            "--set quantization.method=ptq, which needs no labels."
        )
    labels = _as_class_ids(y, x, "training")
    if len(x) < MIN_TRAINING_SAMPLES:
        raise DataError(
            f"Only {len(x)} training samples are left after the validation and calibration split; training needs "
            f"at least {MIN_TRAINING_SAMPLES} (a few hundred to be useful). Pass more data, lower "
            "quantization.calibration_samples or data.validation_fraction, or give --val-data separately."
        )
    _check_range(labels, num_classes, "training")
    val_labels = np.empty((0,), np.int64)
    if val is not None:
        vx, vy = val
        if vy is None:
            raise DataError("The validation data has no labels ('y'); early stopping and accuracy need them.")
        val_labels = _as_class_ids(vy, vx, "validation")
        if len(vx) == 0:
            raise DataError("The validation split is empty. Pass more data or raise data.validation_fraction.")
        _check_range(val_labels, num_classes, "validation")
    return labels, val_labels


def _as_class_ids(y: np.ndarray, x: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if len(y) != len(x):
        raise DataError(f"The {what} data has {len(x)} samples but {len(y)} labels; they must be the same length.")
    if y.ndim > 1 and y.shape[-1] > 1:
        y = y.argmax(axis=-1)
    y = y.reshape(len(y))
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.equal(np.mod(y, 1), 0)):
        raise DataError(f"The {what} labels are not whole numbers; training needs integer class ids 0..N-1.")
    return y.astype(np.int64)


def _check_range(labels: np.ndarray, num_classes: int | None, what: str) -> None:
    if len(labels) and int(labels.min()) < 0:
        raise DataError(f"The {what} labels contain negative class ids ({int(labels.min())}); labels must be 0..N-1.")
    if num_classes and len(labels) and int(labels.max()) >= num_classes:
        raise DataError(
            f"The {what} labels go up to {int(labels.max())} but the model has {num_classes} output classes. "
            f"Labels must be 0..{num_classes - 1}: fix the labels or train on a model with more outputs."
        )


def num_classes_of(model: Any) -> int | None:
    shape = model.outputs[0].shape if getattr(model, "outputs", None) else None
    return int(shape[-1]) if shape is not None and len(shape) >= 2 and shape[-1] is not None else None


def outputs_are_probabilities(model: Any, x: np.ndarray) -> bool:
    """True when the model already ends in a softmax (non-negative rows summing to 1) on sample inputs."""
    out = np.asarray(model(x[: min(len(x), 16)], training=False), dtype=np.float64)
    return bool((out >= 0).all() and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3))


def make_optimizer(name: str, learning_rate: float) -> Any:
    from edgebuild._tf import tf_keras

    keras2 = tf_keras()
    classes = {"adam": keras2.optimizers.Adam, "sgd": keras2.optimizers.SGD, "rmsprop": keras2.optimizers.RMSprop}
    if name not in classes:
        raise DataError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")
    return classes[name](learning_rate=learning_rate)


def fit(
    model: Any,
    train: tuple[np.ndarray, np.ndarray | None],
    val: tuple[np.ndarray, np.ndarray | None] | None,
    section: Any,
    loss: Any = None,
    progress: Progress | None = None,
    seed: int = 0,
    optimizer: str | None = None,
    callbacks: tuple[Any, ...] = (),
    cancel: Any = None,
    labels_checked: bool = False,
) -> TrainingResult:
    """Train `model` (a tf_keras model) in place; see the module doc. `section` is a TrainingSection.

    `val` is what early stopping (and the plateau schedule) watch: never the accuracy gate's samples.
    `loss` defaults to sparse categorical cross-entropy, from logits unless the
    model already outputs probabilities. `optimizer` overrides `section.optimizer`.
    `callbacks` run before the best-weights tracker (e.g. TFMOT's UpdatePruningStep).
    `cancel` (a threading.Event) stops training at the next batch end once set.
    `labels_checked`: the caller checked the targets and they are not plain class ids (distillation marks
    inputs without a label with -1); they go to `model.fit` as given.
    """
    from edgebuild._tf import tf_keras
    from edgebuild.converters import precision

    keras2 = tf_keras()
    x = np.asarray(train[0], dtype=np.float32)
    if labels_checked:
        y = np.asarray(train[1])
        val_y = None if val is None else np.asarray(val[1])
    else:
        y, val_y = check_training_data(train, val, num_classes_of(model))
    val_x = None if val is None else np.asarray(val[0], dtype=np.float32)
    opt_name = str(optimizer or getattr(section, "optimizer", "adam"))
    schedule = getattr(section, "schedule", "constant")
    if schedule not in SCHEDULES:
        raise ProfileError(f"training.schedule = {schedule!r} is not known; choose one of {', '.join(SCHEDULES)}.")
    budget = float(getattr(section, "time_budget", 0) or 0)

    keras2.utils.set_random_seed(seed)
    if loss is None:
        loss = keras2.losses.SparseCategoricalCrossentropy(from_logits=not outputs_are_probabilities(model, x))

    policy = precision.policy_for(section.mixed_precision)
    trained = model
    if policy is not None:
        trained = precision.to_policy(model, policy)  # a mixed twin; its weights come back into `model` below
    trained.compile(optimizer=make_optimizer(opt_name, section.learning_rate), loss=loss, metrics=["accuracy"])

    monitor = "val_loss" if val_x is not None else "loss"
    started = time.perf_counter()
    control = _Control(keras2, cancel, started + budget if budget > 0 else None)
    tracker = _BestWeights(
        keras2, monitor, section.early_stopping, progress, schedule, section.learning_rate, section.epochs
    )
    if not (cancel is not None and cancel.is_set()):
        trained.fit(
            x,
            y,
            validation_data=None if val_x is None else (val_x, val_y),
            epochs=section.epochs,
            batch_size=section.batch_size,
            shuffle=True,
            verbose=0,
            callbacks=[*callbacks, control, tracker],
        )
    else:
        control.stopped_by = "cancelled"
    seconds = time.perf_counter() - started
    if tracker.best_weights is not None:
        trained.set_weights(tracker.best_weights)
    if trained is not model:
        model.set_weights(trained.get_weights())

    stopped_by = control.stopped_by or ("early_stopping" if tracker.stopped_early else "epoch_limit")
    reason = {
        "early_stopping": f"early stopping: {monitor} did not improve for {section.early_stopping} epochs",
        "epoch_limit": f"epoch limit ({section.epochs})",
        "time_budget": f"time budget of {budget:g} s exceeded (training.time_budget); the best epoch so far is kept",
        "cancelled": "cancelled (Ctrl-C)",
    }[stopped_by]
    return TrainingResult(
        epochs_run=len(tracker.history),
        epochs_limit=section.epochs,
        stopped_early=stopped_by == "early_stopping",
        stop_reason=reason,
        best_epoch=tracker.best_epoch,
        monitor=monitor,
        history=tracker.history,
        seconds=round(seconds, 3),
        samples={"training": len(x), "early_stopping": 0 if val_x is None else len(val_x)},
        optimizer=opt_name,
        mixed_precision=policy or "off",
        learning_rate=float(section.learning_rate),
        schedule=schedule,
        final_learning_rate=float(tracker.lr),
        time_budget_s=budget,
        stopped_by=stopped_by,
    )


def _Control(keras2: Any, cancel: Any, deadline: float | None) -> Any:
    """A callback that stops training at the next batch end on cancel or past the deadline."""

    class Control(keras2.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.stopped_by: str | None = None

        def _check(self) -> None:
            if self.stopped_by is None:
                if cancel is not None and cancel.is_set():
                    self.stopped_by = "cancelled"
                elif deadline is not None and time.perf_counter() > deadline:
                    self.stopped_by = "time_budget"
            if self.stopped_by is not None:
                self.model.stop_training = True

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._check()

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._check()

    return Control()


def _BestWeights(
    keras2: Any,
    monitor: str,
    patience: int,
    progress: Progress | None,
    schedule: str = "constant",
    learning_rate: float = 0.0,
    epochs: int = 1,
) -> Any:
    """A callback that records every epoch, keeps the best weights, applies the learning-rate schedule and
    stops after `patience` epochs without improvement."""
    import math

    floor = learning_rate * MIN_LR_FACTOR
    reduce_after = plateau_patience(patience)

    class BestWeights(keras2.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.history: list[dict[str, float]] = []
            self.best = float("inf")
            self.best_epoch = 0
            self.best_weights: list[np.ndarray] | None = None
            self.wait = 0
            self.since_reduce = 0
            self.stopped_early = False
            self.lr = learning_rate

        def _set_lr(self, value: float) -> None:
            self.lr = float(value)
            keras2.backend.set_value(self.model.optimizer.learning_rate, self.lr)

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            if schedule == "cosine" and epochs > 1:
                self._set_lr(floor + (learning_rate - floor) * 0.5 * (1 + math.cos(math.pi * epoch / (epochs - 1))))

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            record = {
                "epoch": epoch + 1,
                **{k: round(float(v), 6) for k, v in logs.items() if k != "lr"},
                "lr": float(f"{self.lr:.4g}"),
            }
            self.history.append(record)
            current = float(logs.get(monitor, float("nan")))
            if np.isfinite(current) and current < self.best - MIN_DELTA:
                self.best, self.best_epoch, self.wait, self.since_reduce = current, epoch + 1, 0, 0
                self.best_weights = self.model.get_weights()
            else:
                self.wait += 1
                self.since_reduce += 1
                if patience and self.wait >= patience:
                    self.stopped_early = True
                    self.model.stop_training = True
                elif schedule == "plateau" and self.since_reduce >= reduce_after and self.lr > floor * 1.0001:
                    self._set_lr(max(floor, self.lr * PLATEAU_FACTOR))
                    self.since_reduce = 0
            if progress is not None:
                progress(record)

    return BestWeights()
