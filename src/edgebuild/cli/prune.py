"""`edgebuild prune MODEL --ratio 0.5 --data D --out DIR`: structured pruning alone, saving the smaller model."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer


def register(app: typer.Typer) -> None:
    app.command("prune")(prune)


def prune(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A .keras/.h5 file or tf_keras SavedModel."),
    data: Path = typer.Option(..., "--data", "-d", help="Training data (.npz with x and y; without y the "
                              "pruned model learns from the original's outputs)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for model.keras and pruning.json."),
    ratio: float = typer.Option(0.5, "--ratio", help="Share of channels to remove per layer, 0 <= ratio < 1."),
    criterion: str = typer.Option("l1", "--criterion", help="l1, l2 or bn_scale."),
    round_to: int = typer.Option(1, "--round-to", help="Round kept channel counts to a multiple (e.g. 8)."),
    min_channels: int = typer.Option(1, "--min-channels", help="No layer keeps fewer channels."),
    layer_ratio: List[str] = typer.Option([], "--layer-ratio", metavar="LAYER=RATIO",
                                          help="Per-layer ratio; repeats."),
    epochs: int = typer.Option(10, "--epochs", min=0, help="Recovery training epochs (0: none)."),
    learning_rate: float = typer.Option(1e-3, "--lr"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    patience: int = typer.Option(3, "--patience", min=0, help="Early stopping patience (0: off)."),
    distill: bool = typer.Option(False, "--distill", help="Recover by distillation from the original model."),
    temperature: float = typer.Option(4.0, "--temperature"),
    alpha: float = typer.Option(0.5, "--alpha"),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Remove whole filters/channels, fine-tune (or distill), and save the narrower model."""
    from edgebuild.cli.render import out as console
    from edgebuild.errors import UsageError

    ratios = {}
    for item in layer_ratio:
        name, sep, value = item.partition("=")
        try:
            ratios[name] = float(value) if sep and name else float("x")
        except ValueError:
            raise UsageError(f"--layer-ratio {item!r} is not LAYER=RATIO (e.g. --layer-ratio conv2d_3=0.25).") from None

    from edgebuild.converters.pruning import PruningOptions, prune_file
    from edgebuild.profiles.schema import DataSection, DistillationSection, TrainingSection

    from edgebuild.errors import ProfileError

    try:
        options = PruningOptions(ratio=ratio, criterion=criterion, round_to=round_to, min_channels=min_channels,
                                 layer_ratios=ratios)
    except ProfileError as exc:  # same checks as the profile's [pruning] table, named as flags here
        text = str(exc)
        for key, flag in (("pruning.ratio", "--ratio"), ("pruning.criterion", "--criterion"),
                          ("pruning.round_to", "--round-to"), ("pruning.min_channels", "--min-channels"),
                          ("pruning.layer_ratios.", "--layer-ratio ")):
            text = text.replace(key, flag)
        raise UsageError(text) from None
    training = _training(TrainingSection, epochs, learning_rate, batch_size, patience)
    distillation = _distillation(DistillationSection, distill, temperature, alpha)
    report = prune_file(model_path, data, out, options, training, distillation, DataSection(seed=seed))
    if as_json:
        import json

        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        console.print(before_after_table(report, str(model_path)))
        console.print(f"saved {report['files']['model']} and {report['files']['report']}")
    return 0


def _training(section_cls, epochs: int, learning_rate: float, batch_size: int, patience: int):
    from edgebuild.errors import UsageError

    if epochs == 0:
        return None
    try:
        return section_cls(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, early_stopping=patience)
    except ValueError as exc:
        raise UsageError(f"Bad training option: {str(exc).splitlines()[-1].strip()}.") from None


def _distillation(section_cls, enabled: bool, temperature: float, alpha: float):
    from edgebuild.errors import UsageError

    try:
        return section_cls(enabled=enabled, temperature=temperature, alpha=alpha)
    except ValueError:
        raise UsageError(f"--temperature must be > 0 and --alpha within 0..1 (got {temperature}, {alpha}).") from None


def before_after_table(report: dict, title: str):
    from rich.table import Table

    table = Table(title=f"structured pruning of {title} (ratio {report['ratio']}, {report['criterion']})",
                  title_justify="left")
    for column in ("", "before", "after", "change"):
        table.add_column(column, justify="left" if not column else "right")
    before, after = report["before"], report["after"]
    for key, label in (("params", "parameters"), ("macs", "MACs")):
        table.add_row(label, f"{before[key]:,}", f"{after[key]:,}", f"{before[key] / max(1, after[key]):.2f}x fewer")
    acc = report.get("accuracy") or {}
    if acc.get("original") is not None:
        table.add_row("top-1 (validation)", f"{acc['original']:.2f}%", f"{acc['recovered']:.2f}%",
                      f"{acc['recovered'] - acc['original']:+.2f} pts ({report['recovery']}; "
                      f"{acc['pruned']:.2f}% before)")
    for name, (b, a) in report["channels"].items():
        if b != a:
            table.add_row(f"  {name}", str(b), str(a), "channels")
    return table
