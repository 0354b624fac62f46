"""`edgebuild validate ARTIFACT.tflite --target T [--data D] [--reference MODEL]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from edgebuild.errors import GateFailed


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(
    artifact_path: Path = typer.Argument(..., metavar="ARTIFACT", help="A .tflite file."),
    target: str = typer.Option(..., "--target", "-t", help="Target whose rules and gates apply."),
    data: Path | None = typer.Option(None, "--data", "-d", help="Validation data (all of it is used)."),
    reference: Path | None = typer.Option(None, "--reference", help="The float model, for accuracy comparison."),
    set_: list[str] = typer.Option([], "--set"),
    as_json: bool = typer.Option(False, "--json", help="Print the validation block as JSON."),
    no_gates: bool = typer.Option(False, "--no-gates"),
) -> int:
    """Check an existing artifact against a target's rules, accuracy gates, arena and budgets."""
    from edgebuild.api import validate as api_validate
    from edgebuild.profiles import resolve

    name = resolve(target, set_).name
    try:
        report = api_validate(artifact_path, target, data, reference=reference, overrides=set_, gates=not no_gates)
    except GateFailed as exc:
        _show(exc.result.raw, artifact_path, name, as_json)  # type: ignore[attr-defined]
        raise
    _show(report.raw, artifact_path, name, as_json)
    return 0


def _show(result: dict[str, Any], artifact_path: Path, profile_name: str, as_json: bool) -> None:
    from edgebuild.cli.render import out, validation_table

    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        out.print(validation_table(result, f"{artifact_path} against '{profile_name}'"))
