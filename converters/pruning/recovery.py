"""Recovery after the surgery: fine-tune, distill, or "auto" (fine-tune, then distill when still short).

`run_structured_pruning` is the build's `prune` stage: the surgery, recovery training, and the accuracy the
report gives (original, right after pruning, after recovery).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebuild.profiles.schema import (
    DistillationSection,
    PruningSection,
    TrainingSection,
)

from .surgery import PruningResult, prune_structured

AUTO_DISTILL_GAP = 1.0  # points of early-stopping top-1 below the unpruned model that make "auto" distill too


@dataclass
class PruneOutcome:
    """Pruning plus recovery training: what the pipeline stage gets back."""

    model: Any
    pruning: PruningResult
    accuracy: dict[str, Any]  # top-1 of original, pruned before and after recovery (on `evaluation` samples)
    training: Any  # TrainingResult or DistillationOutcome, or None without training
    recovery: str  # "fine-tune", "distill", "fine-tune + distill" or "none"
    fallback: dict[str, Any] | None = None  # "auto": why distillation ran after fine-tuning, and what was kept

    def report(self) -> dict[str, Any]:
        block = self.pruning.report()
        block["accuracy"] = self.accuracy
        block["recovery"] = self.recovery
        if self.training is not None:
            block["training"] = self.training.to_dict()
        if self.fallback is not None:
            block["distillation_fallback"] = self.fallback
        return block


def recovery_mode(pruning: PruningSection, distillation: DistillationSection | None, labelled: bool) -> str:
    """ "fine-tune", "distill" or "auto" for a [pruning] section (see `run_structured_pruning`)."""
    if distillation is not None and distillation.enabled:
        return "distill"
    if not labelled:
        return "distill"  # no labels: learn from the unpruned model's outputs
    return pruning.recovery


def run_structured_pruning(
    model: Any,
    train: tuple[np.ndarray, np.ndarray | None],
    val: tuple[np.ndarray, np.ndarray | None] | None,
    pruning: PruningSection,
    training: TrainingSection | None,
    distillation: DistillationSection | None = None,
    seed: int = 0,
    progress: Any = None,
    teacher: Any = None,
    evaluation: tuple[np.ndarray, np.ndarray | None] | None = None,
    cancel: Any = None,
) -> PruneOutcome:
    """The `prune` stage: prune `model` (tf_keras) by `[pruning]` (the profile's section, or PruningOptions),
    then recover accuracy.

    `val` is what early stopping watches (in a build: the early-stopping split); `evaluation` the samples the
    report's accuracy is measured on (in a build: the gate's validation samples, never trained on; default
    `val`). Recovery (`training` None: none):
    - "distill" (`[distillation]` enabled, `pruning.recovery = "distill"`, or data without labels):
      distillation from `teacher` (default `model`, the unpruned original);
    - "fine-tune": `train.fit` on the labels;
    - "auto" (default): fine-tune; when the result still scores more than AUTO_DISTILL_GAP points below the
      unpruned model on `val`, distill from it, starting from the fine-tuned weights, and keep whichever
      scores higher on `val` (the fine-tuned weights on a tie). Both share the one time budget.
    The report's `training` block is the TrainingResult, or with distillation only the distillation block
    (which holds its TrainingResult); "auto" adds `distillation_fallback` when it distilled.
    """
    from ..train import fit

    result = prune_structured(model, pruning)
    evaluation = val if evaluation is None else evaluation
    teacher = model if teacher is None else teacher
    before_acc = top1(model, evaluation)
    pruned_acc = top1(result.model, evaluation)
    trained, recovery, fallback = None, "none", None
    if training is not None:
        mode = recovery_mode(pruning, distillation, train[1] is not None)
        if mode == "distill":
            trained = _distill(teacher, result.model, train, val, distillation, training, seed, progress, cancel)
            recovery = "distill"
        else:
            trained = fit(result.model, train, val, training, progress=progress, seed=seed, cancel=cancel)
            recovery = "fine-tune"
            if mode == "auto" and trained.stopped_by not in ("cancelled", "time_budget"):
                fallback = _distill_fallback(
                    model,
                    teacher,
                    result.model,
                    train,
                    val,
                    distillation,
                    training,
                    seed,
                    progress,
                    cancel,
                    trained.seconds,
                )
                if fallback is not None and fallback["kept"] == "distill":
                    recovery = "fine-tune + distill"
    accuracy = {
        "original": before_acc,
        "pruned": pruned_acc,
        "recovered": top1(result.model, evaluation),
        "samples": 0 if evaluation is None else len(evaluation[0]),
    }
    return PruneOutcome(result.model, result, accuracy, trained, recovery, fallback)


def _distill(
    teacher: Any,
    student: Any,
    train: Any,
    val: Any,
    distillation: DistillationSection | None,
    training: TrainingSection,
    seed: int,
    progress: Any,
    cancel: Any,
) -> Any:
    from ..distillation import distill

    section = distillation if distillation is not None else DistillationSection(enabled=True)
    return distill(
        teacher,
        student,
        train,
        val,
        section,
        training,
        seed=seed,
        progress=progress,
        student_label="the structurally pruned model",
        cancel=cancel,
    )


def _distill_fallback(
    original: Any,
    teacher: Any,
    student: Any,
    train: Any,
    val: Any,
    distillation: DistillationSection | None,
    training: TrainingSection,
    seed: int,
    progress: Any,
    cancel: Any,
    spent: float,
) -> dict[str, Any] | None:
    """ "auto": distill after fine-tuning when the early-stopping split says fine-tuning fell short."""
    if val is None or val[1] is None or len(val[0]) == 0:
        return None
    reference, fine_tuned = top1(original, val), top1(student, val)
    if reference is None or fine_tuned is None or reference - fine_tuned <= AUTO_DISTILL_GAP:
        return None
    if training.time_budget:
        left = training.time_budget - spent
        if left <= 0:
            return None
        training = training.model_copy(update={"time_budget": left})
    kept_weights = student.get_weights()
    outcome = _distill(teacher, student, train, val, distillation, training, seed, progress, cancel)
    distilled = top1(student, val)
    kept = "distill" if distilled is not None and distilled > fine_tuned else "fine-tune"
    if kept == "fine-tune":
        student.set_weights(kept_weights)
    return {
        "reason": f"fine-tuning left early-stopping top-1 at {fine_tuned:.2f}% vs {reference:.2f}% unpruned "
        f"(more than {AUTO_DISTILL_GAP:g} points below)",
        "early_stopping_top1": {"original": reference, "fine-tune": fine_tuned, "distill": distilled},
        "kept": kept,
        "cancelled": outcome.training.cancelled,
        **outcome.report(),
    }


def top1(model: Any, data: tuple[np.ndarray, np.ndarray | None] | None, batch_size: int = 256) -> float | None:
    """Top-1 accuracy of a Keras model on labelled data, in percent; None without labels."""
    if data is None or data[1] is None or len(data[0]) == 0:
        return None
    x, y = np.asarray(data[0], np.float32), np.asarray(data[1])
    preds = np.concatenate(
        [np.asarray(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    )
    return round(100.0 * float((preds.argmax(-1) == y.reshape(len(y))).mean()), 2)
