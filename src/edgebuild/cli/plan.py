"""`edgebuild plan MODEL --target T`: print the stages a build would run, without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import typer

from edgebuild.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


def plan(
    model: Path = typer.Argument(..., help="The model a build would load."),
    target: list[str] = typer.Option([], "--target", "-t", help="Target(s), as for build."),
    data: Path | None = typer.Option(None, "--data", "-d"),
    set_: list[str] = typer.Option([], "--set"),
    calibration: str = typer.Option("data", "--calibration"),
) -> None:
    """Show each target's ordered stages and stop."""
    from edgebuild.pipeline import BuildRequest, plan_build

    if not target:
        raise UsageError("No target given. Pass --target mobile|edgetpu|mcu|all.")
    request = BuildRequest(
        model=model, targets=tuple(target), data=data, overrides=tuple(set_), random_calibration=calibration == "random"
    )
    for target_plan in plan_build(request):
        typer.echo(f"{target_plan.target}: {target_plan.profile.description}")
        for number, stage in enumerate(target_plan.stages, 1):
            typer.echo(f"  {number}. {stage.name:<10} {stage.what}")
