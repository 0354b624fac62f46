"""`edgebuild distill --teacher T --student S --data D --out DIR`: knowledge distillation alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

# Defaults as measured in docs/distillation.md (kept here, not imported, so `--help` needs no TensorFlow;
# tests/integration/test_distill.py checks they equal edgebuild.converters.distillation's).
TEMPERATURE, ALPHA = 4.0, 0.5
EPOCHS, PATIENCE, LEARNING_RATE, BATCH_SIZE, SCHEDULE = 300, 20, 4e-3, 64, "plateau"
AUGMENT_CHOICES = ("auto", "none", "image", "sequence", "vector")  # the pass's AUGMENT_KINDS (checked by a test)
BASELINE_CHOICES = ("auto", "on", "off")  # the pass's BASELINES (checked by a test)


def register(app: typer.Typer) -> None:
    app.command("distill")(distill)


def distill(
    teacher: Path = typer.Option(..., "--teacher", "-t", help="The trained model to learn from (.keras/.h5)."),
    student: str = typer.Option(
        ..., "--student", "-s", help="A student model file, or width:F for a copy of the teacher F times as wide."
    ),
    data: Path = typer.Option(..., "--data", "-d", help="Training data (.npz; labels optional)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for model.keras and distillation.json."),
    unlabelled: Path | None = typer.Option(
        None,
        "--unlabelled",
        "-u",
        help="More inputs without labels (.npz/.npy or an image folder): the teacher labels them.",
    ),
    val_data: Path | None = typer.Option(
        None,
        "--val-data",
        help="Held-out samples for the report's accuracy (default: a validation split of --data, never trained on).",
    ),
    temperature: float = typer.Option(TEMPERATURE, "--temperature"),
    alpha: float = typer.Option(ALPHA, "--alpha", help="Weight of the hard-label loss (0: soft targets only)."),
    augment: str = typer.Option(
        "auto", "--augment", help="Teacher-labelled augmented views: auto, image, sequence, vector or none."
    ),
    copies: int = typer.Option(1, "--copies", min=0, help="Augmented views of each input per step."),
    epochs: int = typer.Option(EPOCHS, "--epochs", min=1, help="Epoch ceiling; early stopping ends sooner."),
    learning_rate: float = typer.Option(LEARNING_RATE, "--lr"),
    batch_size: int = typer.Option(BATCH_SIZE, "--batch-size", min=1),
    patience: int = typer.Option(PATIENCE, "--patience", min=0, help="Early stopping patience (0: off)."),
    schedule: str = typer.Option(SCHEDULE, "--schedule", help="Learning rate: plateau, cosine or constant."),
    time_budget: float = typer.Option(0.0, "--time-budget", min=0.0, help="Seconds of training at most (0: none)."),
    baseline: str = typer.Option(
        "auto", "--baseline", help="Train a labels-only student for the gap closure: auto (when cheap), on, off."
    ),
    round_to: int = typer.Option(1, "--round-to", help="Channel multiple for width:F students."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Train a smaller student on a teacher's softened outputs (Hinton et al. 2015) and save it."""
    from edgebuild.cli.render import out as console
    from edgebuild.converters import Augmentation, distill_files
    from edgebuild.errors import UsageError
    from edgebuild.profiles.schema import DistillationSection, TrainingSection

    if augment not in AUGMENT_CHOICES:
        raise UsageError(f"--augment {augment!r}: choose one of {', '.join(AUGMENT_CHOICES)}.")
    if baseline not in BASELINE_CHOICES:
        raise UsageError(f"--baseline {baseline!r}: choose one of {', '.join(BASELINE_CHOICES)}.")
    try:
        section = DistillationSection(enabled=True, temperature=temperature, alpha=alpha)
    except ValueError:
        raise UsageError(f"--temperature must be > 0 and --alpha within 0..1 (got {temperature}, {alpha}).") from None
    try:
        training = TrainingSection(
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            early_stopping=patience,
            schedule=schedule,
            time_budget=time_budget,
        )
    except ValueError as exc:
        raise UsageError(f"Bad training option: {str(exc).splitlines()[-1].strip()}.") from None
    report = distill_files(
        teacher,
        student,
        data,
        out,
        section,
        training,
        seed=seed,
        round_to=round_to,
        augment=Augmentation(kind=augment, copies=copies),
        unlabelled=unlabelled,
        val_data=val_data,
        baseline=baseline,
    )
    if as_json:
        import json

        typer.echo(json.dumps(report, indent=2, default=str))
        return 0
    for line in summary_lines(report, str(teacher)):
        console.print(line)
    return 0


def summary_lines(report: dict[str, Any], teacher: str) -> list[str]:
    """The console summary: sizes, accuracy on the held-out samples, gap closure, what training saw."""
    t, s, acc, run = report["teacher_summary"], report["student_summary"], report["accuracy"], report["training"]
    lines = [
        f"teacher {teacher}: {t['params']:,} parameters, {t['macs']:,} MACs",
        f"student ({report['student']}): {s['params']:,} parameters, {s['macs']:,} MACs",
        f"top-1 on {acc['samples']} held-out samples ({acc['on']}): teacher {_pct(acc['teacher'])}, "
        f"labels-only student {_pct(acc['labels_only'])}, distilled student {_pct(acc['student_after'])}",
    ]
    if acc.get("gap_closure") is not None:
        lines.append(f"gap closure {100 * acc['gap_closure']:.0f}% of the teacher - labels-only gap")
    elif not report.get("baseline", {}).get("ran", False):
        lines.append(f"no labels-only baseline: {report.get('baseline', {}).get('why', 'not run')}")
    seen, aug = report.get("inputs_per_epoch") or {}, report.get("augmentation") or {}
    if seen:
        lines.append(
            f"each epoch saw {seen['total']:,} inputs: {seen['labelled']:,} labelled, "
            f"{seen['unlabelled']:,} unlabelled, {seen['augmented']:,} augmented "
            f"({aug.get('kind', 'none')}; {seen['mixup']:,} of them mixup), all labelled by the teacher"
        )
    lines.append(
        f"T={report['temperature']:g}, alpha={report['alpha']:g}, {run['epochs_run']} epochs "
        f"(best {run['best_epoch']}), {run['stop_reason']}, {run['seconds']:.0f} s"
    )
    lines.append(f"saved {report['files']['model']} and {report['files']['report']}")
    return lines


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}%"
