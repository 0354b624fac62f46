"""`edgebuild distill`: teacher file + student + data -> trained student, with the numbers that judge it.

The report gives top-1 on the held-out samples (the validation split of
`--data`, or all of `--val-data`) for the teacher, the student before and
after distillation, and a labels-only baseline: a copy of the untrained
student (same initial weights) trained by `train.fit` on the labels alone
with the same `[training]` settings (epoch ceiling, early stopping, schedule).
From those, the gap closure

    (student_distilled - student_labels_only) / (teacher - student_labels_only)

The baseline runs when asked ("on"), never ("off"), or with "auto" when the
distillation took at most `BASELINE_AUTO_SECONDS` (labels-only training costs
less: no teacher, no augmented views).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.errors import ProfileError

from .core import DEFAULT_AUGMENT, distill
from .students import make_student

BASELINE_AUTO_SECONDS = 180.0
BASELINES = ("auto", "on", "off")
MIN_GAP_POINTS = 0.5  # a smaller teacher - baseline difference gives no gap closure (noise, not a gap)


def gap_closure(teacher: float | None, labels_only: float | None, distilled: float | None) -> float | None:
    """(distilled - labels_only) / (teacher - labels_only); None without a gap of MIN_GAP_POINTS."""
    if teacher is None or labels_only is None or distilled is None or teacher - labels_only < MIN_GAP_POINTS:
        return None
    return round((distilled - labels_only) / (teacher - labels_only), 4)


def labels_only_baseline(
    initial: Any,
    train: tuple[np.ndarray, np.ndarray | None],
    val: tuple[np.ndarray, np.ndarray | None] | None,
    training: Any,
    seed: int = 0,
    cancel: Any = None,
) -> tuple[Any, Any]:
    """(model, TrainingResult): a clone of `initial` (weights included) trained on the labels alone."""
    from edgebuild._tf import tf_keras
    from edgebuild.converters.train import fit

    keras2 = tf_keras()
    model = keras2.models.clone_model(initial)
    model.set_weights(initial.get_weights())
    section = training.model_copy(update={"mixed_precision": "off"})
    return model, fit(model, train, val, section, seed=seed, cancel=cancel)


def load_splits(data_path: Any, input_shape: tuple, seed: int = 0, val_data: Any = None) -> tuple:
    """(train, early-stopping, held-out): `data.split` of --data; with `val_data` that file is held out whole."""
    from edgebuild.data import check_fits, load_dataset, split
    from edgebuild.profiles.schema import DataSection

    data = check_fits(load_dataset(Path(data_path), input_shape), input_shape, "the teacher")
    splits = split(len(data.x), DataSection(seed=seed), 0, hold_out_validation=val_data is None)

    def take(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return data.x[idx], None if data.y is None else data.y[idx]

    held_out = take(splits.early_stopping) if len(splits.early_stopping) else None
    if val_data is None:
        return take(splits.training), held_out, take(splits.validation)
    extra = check_fits(load_dataset(Path(val_data), input_shape), input_shape, "the teacher")
    return take(splits.training), held_out, (extra.x, extra.y)


def distill_files(
    teacher_path: Any,
    student_spec: str,
    data_path: Any,
    out_dir: Any,
    section: Any,
    training: Any,
    seed: int = 0,
    round_to: int = 1,
    progress: Any = None,
    *,
    augment: Any = DEFAULT_AUGMENT,
    unlabelled: Any = None,
    val_data: Any = None,
    baseline: str = "auto",
) -> dict[str, Any]:
    """`edgebuild distill`: teacher file + student (file or "width:F") + data -> trained student in `out_dir`.

    Returns the report (also written as distillation.json): the `distill` block plus teacher/student
    summaries, `accuracy` (teacher, student before/after, labels_only, gap_closure, on which samples) and
    `baseline` (the labels-only run's training block, or why it did not run).
    """
    from edgebuild._tf import tf_keras
    from edgebuild.converters.macs import summary
    from edgebuild.converters.pruning import save_model, top1
    from edgebuild.converters.qat import model_for_training
    from edgebuild.model import load_model

    from .oracle import load_unlabelled

    if baseline not in BASELINES:
        raise ProfileError(f"baseline {baseline!r}: choose one of {', '.join(BASELINES)}.")
    loaded = load_model(Path(teacher_path))
    train, held_out, val = load_splits(data_path, loaded.input_shape, seed, val_data)
    teacher, _ = model_for_training(loaded, train[0][:8])
    extra = None if unlabelled is None else load_unlabelled(unlabelled, tuple(teacher.inputs[0].shape))
    tf_keras().utils.set_random_seed(seed)
    student, what = make_student(teacher, student_spec, round_to=round_to)
    initial = student.get_weights()
    before = top1(student, val)
    outcome = distill(
        teacher,
        student,
        train,
        held_out,
        section,
        training,
        seed=seed,
        progress=progress,
        student_label=what,
        augment=augment,
        unlabelled=extra,
    )
    report = outcome.report()
    accuracy: dict[str, Any] = {
        "teacher": top1(teacher, val),
        "student_before": before,
        "student_after": top1(student, val),
        "labels_only": None,
        "gap_closure": None,
        "samples": 0 if val[1] is None else len(val[0]),
        "on": "--val-data" if val_data is not None else "the validation split of --data (never trained on)",
    }
    run = baseline == "on" or (baseline == "auto" and outcome.training.seconds <= BASELINE_AUTO_SECONDS)
    if train[1] is None:
        report["baseline"] = {"ran": False, "why": "the data has no labels"}
    elif not run:
        report["baseline"] = {
            "ran": False,
            "why": "off"
            if baseline == "off"
            else f"distillation took {outcome.training.seconds:.0f} s (> {BASELINE_AUTO_SECONDS:g} s); "
            "--baseline on trains it anyway",
        }
    else:
        initial_model = tf_keras().models.clone_model(student)
        initial_model.set_weights(initial)
        model, result = labels_only_baseline(initial_model, train, held_out, training, seed=seed)
        accuracy["labels_only"] = top1(model, val)
        report["baseline"] = {"ran": True, "training": result.to_dict()}
    accuracy["gap_closure"] = gap_closure(accuracy["teacher"], accuracy["labels_only"], accuracy["student_after"])
    report.update(
        {
            "teacher": str(teacher_path),
            "teacher_summary": summary(teacher),
            "student_summary": summary(student),
            "accuracy": accuracy,
        }
    )
    report["files"] = save_model(student, out_dir, report, "distillation.json")
    return report
