"""`edgebuild prune MODEL --ratio 0.5 --data D --out DIR`: structured pruning alone, saving the smaller model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from edgebuild.profiles import Profile
    from edgebuild.profiles.schema import DistillationSection, TrainingSection


def register(app: typer.Typer) -> None:
    app.command("prune")(prune)


def prune(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A .keras/.h5 file or tf_keras SavedModel."),
    data: Path = typer.Option(
        ...,
        "--data",
        "-d",
        help="Training data (.npz with x and y, .npy, or an image folder "
        "with class sub-folders, scaled by data.image_range; without labels the pruned "
        "model learns from the original's outputs).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for model.keras and pruning.json."),
    target: str | None = typer.Option(
        None,
        "--target",
        "-t",
        help="Target or profile .toml whose [pruning], [training] recovery_*, "
        "[distillation] and [data] settings are the defaults (default: the profile schema's defaults).",
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a key of --target's profile, e.g. --set data.image_range=0-1. Repeats."
    ),
    ratio: float | None = typer.Option(
        None, "--ratio", help="Share of channels to remove per layer, 0 <= ratio < 1 (default: pruning.ratio)."
    ),
    criterion: str | None = typer.Option(None, "--criterion", help="l1, l2 or bn_scale (default: pruning.criterion)."),
    round_to: int | None = typer.Option(
        None, "--round-to", help="Round kept channel counts to a multiple (e.g. 8; default: pruning.round_to)."
    ),
    min_channels: int | None = typer.Option(
        None, "--min-channels", help="No layer keeps fewer channels (default: pruning.min_channels)."
    ),
    layer_ratio: list[str] = typer.Option(
        [], "--layer-ratio", metavar="LAYER=RATIO", help="Per-layer ratio, over pruning.layer_ratios; repeats."
    ),
    epochs: int | None = typer.Option(
        None,
        "--epochs",
        min=0,
        help="Recovery epoch ceiling; early stopping ends sooner (default: training.recovery_epochs; 0: no training).",
    ),
    learning_rate: float | None = typer.Option(None, "--lr", help="Default: training.recovery_learning_rate."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Default: training.batch_size."),
    patience: int | None = typer.Option(
        None, "--patience", min=0, help="Early stopping patience (default: training.recovery_early_stopping; 0: off)."
    ),
    distill: bool = typer.Option(
        False, "--distill", help="Recover by distillation from the original model (also when distillation.enabled)."
    ),
    temperature: float | None = typer.Option(None, "--temperature", help="Default: distillation.temperature."),
    alpha: float | None = typer.Option(None, "--alpha", help="Default: distillation.alpha."),
    seed: int | None = typer.Option(None, "--seed", help="Split and training seed (default: data.seed)."),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Remove whole filters/channels, recover (fine-tune or distill, as a build does), save the narrower model.

    Flags override the profile's settings; recovery trains with `[training]`'s recovery_* fields, as in a build.
    """
    from edgebuild.cli.render import out as console
    from edgebuild.errors import UsageError

    ratios = {}
    for item in layer_ratio:
        name, sep, value = item.partition("=")
        try:
            ratios[name] = float(value) if sep and name else float("x")
        except ValueError:
            raise UsageError(f"--layer-ratio {item!r} is not LAYER=RATIO (e.g. --layer-ratio conv2d_3=0.25).") from None

    from edgebuild.converters import PruningOptions, prune_file
    from edgebuild.errors import ProfileError
    from edgebuild.profiles.schema import DataSection, DistillationSection

    profile = target_profile(target, set_)
    flags = {"ratio": ratio, "criterion": criterion, "round_to": round_to, "min_channels": min_channels}
    try:
        options = PruningOptions(
            **{
                **profile.pruning.model_dump(),
                "kind": "structured",
                **{k: v for k, v in flags.items() if v is not None},
                "layer_ratios": {**profile.pruning.layer_ratios, **ratios},
            }
        )
    except ProfileError as exc:  # same checks as the profile's [pruning] table, named as flags here
        text = str(exc)
        for key, flag in (
            ("pruning.ratio", "--ratio"),
            ("pruning.criterion", "--criterion"),
            ("pruning.round_to", "--round-to"),
            ("pruning.min_channels", "--min-channels"),
            ("pruning.layer_ratios.", "--layer-ratio "),
        ):
            text = text.replace(key, flag)
        raise UsageError(text) from None
    training = _recovery_training(profile.training, epochs, learning_rate, batch_size, patience)
    section = profile.distillation
    distillation = _distillation(
        DistillationSection,
        distill or section.enabled,
        section.temperature if temperature is None else temperature,
        section.alpha if alpha is None else alpha,
    )
    data_section = profile.data if seed is None else DataSection(**{**profile.data.model_dump(), "seed": seed})
    report = prune_file(model_path, data, out, options, training, distillation, data_section)
    if as_json:
        import json

        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        console.print(before_after_table(report, str(model_path)))
        console.print(f"saved {report['files']['model']} and {report['files']['report']}")
    return 0


def target_profile(target: str | None, overrides: list[str]) -> Profile:
    """The resolved profile of `--target` with `--set` applied; without a target, the schema's defaults."""
    from edgebuild.errors import UsageError
    from edgebuild.profiles import Profile, resolve

    if target is not None:
        return resolve(target, overrides)
    if overrides:
        raise UsageError(
            f"--set {overrides[0]} overrides a target's profile; pass --target too (e.g. -t mobile or a profile .toml)."
        )
    return Profile(name="defaults")


def _recovery_training(
    section: TrainingSection,
    epochs: int | None,
    learning_rate: float | None,
    batch_size: int | None,
    patience: int | None,
) -> TrainingSection | None:
    """The profile's [training] as a build's recovery sees it (`recovery_settings`), with the flags given over it;
    None for --epochs 0."""
    from edgebuild.converters import recovery_settings
    from edgebuild.errors import UsageError
    from edgebuild.profiles.schema import TrainingSection

    if epochs == 0:
        return None
    flags = {"epochs": epochs, "learning_rate": learning_rate, "batch_size": batch_size, "early_stopping": patience}
    try:
        return TrainingSection(
            **{**recovery_settings(section).model_dump(), **{k: v for k, v in flags.items() if v is not None}}
        )
    except ValueError as exc:
        raise UsageError(_bad_training(exc)) from None


def _training(
    section_cls: type[TrainingSection], epochs: int, learning_rate: float, batch_size: int, patience: int
) -> TrainingSection | None:
    from edgebuild.errors import UsageError

    if epochs == 0:
        return None
    try:
        return section_cls(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, early_stopping=patience)
    except ValueError as exc:
        raise UsageError(_bad_training(exc)) from None


def _bad_training(exc: ValueError) -> str:
    """A TrainingSection's ValidationError in terms of the flag that set the value."""
    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors:
        return f"Bad training option: {exc}."
    error = errors[0]
    field = ".".join(str(part) for part in error["loc"])
    flag = {
        "epochs": "--epochs",
        "learning_rate": "--lr",
        "batch_size": "--batch-size",
        "early_stopping": "--patience",
    }.get(field, f"training.{field}")
    return f"Bad training option: {flag} = {error.get('input')!r}: {error['msg']}."


def _distillation(
    section_cls: type[DistillationSection], enabled: bool, temperature: float, alpha: float
) -> DistillationSection:
    from edgebuild.errors import UsageError

    try:
        return section_cls(enabled=enabled, temperature=temperature, alpha=alpha)
    except ValueError:
        raise UsageError(f"--temperature must be > 0 and --alpha within 0..1 (got {temperature}, {alpha}).") from None


def before_after_table(report: dict[str, Any], title: str) -> Table:
    from rich.table import Table

    table = Table(
        title=f"structured pruning of {title} (ratio {report['ratio']}, {report['criterion']})", title_justify="left"
    )
    for column in ("", "before", "after", "change"):
        table.add_column(column, justify="left" if not column else "right")
    before, after = report["before"], report["after"]
    for key, label in (("params", "parameters"), ("macs", "MACs")):
        table.add_row(label, f"{before[key]:,}", f"{after[key]:,}", f"{before[key] / max(1, after[key]):.2f}x fewer")
    acc = report.get("accuracy") or {}
    if acc.get("original") is not None:
        table.add_row(
            "top-1 (validation)",
            f"{acc['original']:.2f}%",
            f"{acc['recovered']:.2f}%",
            f"{acc['recovered'] - acc['original']:+.2f} pts ({report['recovery']}; {acc['pruned']:.2f}% before)",
        )
    for name, (b, a) in report["channels"].items():
        if b != a:
            table.add_row(f"  {name}", str(b), str(a), "channels")
    return table
