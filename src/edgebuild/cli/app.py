"""The typer application: registers each command module (all cheap to import)."""

from __future__ import annotations

import typer

from edgebuild import __version__

app = typer.Typer(
    name="edgebuild",
    help="Build a trained TensorFlow/Keras model into validated, benchmarked artifacts for edge hardware.\n\n"
    "edgebuild --target T MODEL is short for edgebuild build MODEL --target T.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgebuild {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Global options (also: --debug anywhere shows tracebacks)."""


def _register() -> None:
    from edgebuild.cli import (
        bench,
        build,
        cache,
        carray,
        compare,
        debug_quant,
        distill,
        doctor,
        flash,
        optimize,
        plan,
        prune,
        targets,
        validate,
    )

    for module in (
        build,
        targets,
        plan,
        validate,
        bench,
        compare,
        carray,
        flash,
        prune,
        distill,
        doctor,
        cache,
        debug_quant,
        optimize,
    ):
        module.register(app)


_register()
