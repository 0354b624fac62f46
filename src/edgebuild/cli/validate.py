"""`edgebuild validate ARTIFACT.tflite --target T [--data D] [--reference MODEL]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from edgebuild.errors import GateFailed


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(
    artifact_path: Path = typer.Argument(..., metavar="ARTIFACT", help="A .tflite file."),
    target: str = typer.Option(..., "--target", "-t", help="Target whose rules and gates apply."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Validation data (all of it is used)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="The float model, for accuracy comparison."),
    set_: List[str] = typer.Option([], "--set"),
    as_json: bool = typer.Option(False, "--json", help="Print the validation block as JSON."),
    no_gates: bool = typer.Option(False, "--no-gates"),
) -> int:
    """Check an existing artifact against a target's rules, accuracy gates, arena and budgets."""
    from edgebuild.artifact import read_artifact
    from edgebuild.cli.render import out, validation_table
    from edgebuild.data import check_fits, load_dataset
    from edgebuild.profiles import resolve
    from edgebuild.validation import ValidationData, validate_artifact

    profile = resolve(target, set_)
    artifact = read_artifact(artifact_path)
    vdata = None
    if data is not None:
        shape = (None, *artifact.inputs[0].shape[1:])
        dataset = check_fits(load_dataset(data, shape, profile.data.image_range), shape, str(artifact_path))
        x = dataset.x[: profile.data.max_validation_samples]
        y = dataset.y[: len(x)] if dataset.y is not None else None
        ref_outputs = None
        if reference is not None:
            from edgebuild.model import load_model

            ref_outputs = load_model(reference).predict(x)
        vdata = ValidationData(x=x, y=y, reference=ref_outputs)
    result = validate_artifact(artifact_path, artifact, profile, vdata)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        out.print(validation_table(result, f"{artifact_path} against '{profile.name}'"))
    if not result["passed"] and not no_gates:
        failed = "; ".join(c["summary"].rstrip(". ") for c in result["checks"] if not c["passed"])
        raise GateFailed(f"{artifact_path} failed validation for '{profile.name}': {failed}.")
    return 0
