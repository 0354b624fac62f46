"""`edgebuild distill --teacher T --student S --data D --out DIR`: knowledge distillation alone."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("distill")(distill)


def distill(
    teacher: Path = typer.Option(..., "--teacher", "-t", help="The trained model to learn from (.keras/.h5)."),
    student: str = typer.Option(..., "--student", "-s",
                                help="A student model file, or width:F for a copy of the teacher F times as wide."),
    data: Path = typer.Option(..., "--data", "-d", help="Training data (.npz; labels optional)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for model.keras and distillation.json."),
    temperature: float = typer.Option(4.0, "--temperature"),
    alpha: float = typer.Option(0.5, "--alpha", help="Weight of the hard-label loss (0: soft targets only)."),
    epochs: int = typer.Option(10, "--epochs", min=1),
    learning_rate: float = typer.Option(1e-3, "--lr"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    patience: int = typer.Option(3, "--patience", min=0, help="Early stopping patience (0: off)."),
    round_to: int = typer.Option(1, "--round-to", help="Channel multiple for width:F students."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Train a smaller student on a teacher's softened outputs (Hinton et al. 2015) and save it."""
    from edgebuild.cli.prune import _distillation, _training
    from edgebuild.cli.render import out as console
    from edgebuild.converters.distill import distill_files
    from edgebuild.profiles.schema import DistillationSection, TrainingSection

    section = _distillation(DistillationSection, True, temperature, alpha)
    training = _training(TrainingSection, epochs, learning_rate, batch_size, patience)
    report = distill_files(teacher, student, data, out, section, training, seed=seed, round_to=round_to)
    if as_json:
        import json

        typer.echo(json.dumps(report, indent=2, default=str))
        return 0
    t, s, acc = report["teacher_summary"], report["student_summary"], report["accuracy"]
    console.print(f"teacher {teacher}: {t['params']:,} parameters, {t['macs']:,} MACs, top-1 {_pct(acc['teacher'])}")
    console.print(f"student ({report['student']}): {s['params']:,} parameters, {s['macs']:,} MACs, "
                  f"top-1 {_pct(acc['student_before'])} -> {_pct(acc['student_after'])} "
                  f"(T={report['temperature']:g}, alpha={report['alpha']:g}, "
                  f"{report['training']['epochs_run']} epochs, {report['training']['stop_reason']})")
    console.print(f"saved {report['files']['model']} and {report['files']['report']}")
    return 0


def _pct(value) -> str:
    return "n/a (no labels)" if value is None else f"{value:.2f}%"
