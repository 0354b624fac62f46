"""`edgebuild carray ARTIFACT.tflite --name g_model --out DIR`: C sources for any .tflite."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("carray")(carray)


def carray(
    artifact_path: Path = typer.Argument(..., metavar="ARTIFACT", help="A .tflite file."),
    name: str = typer.Option("g_model", "--name", help="C symbol for the model array."),
    out_dir: Path = typer.Option(Path("."), "--out", "-o", help="Folder for the generated files."),
    xxd_names: bool = typer.Option(False, "--xxd-names", help="`xxd -i` style: unsigned char NAME[] + NAME_len."),
    arena: int | None = typer.Option(None, "--arena", help="Arena bytes for model_settings.h (from a build report)."),
) -> int:
    """Write model_data.h/.cc and model_ops.h (and model_settings.h, main.cc with --arena)."""
    from edgebuild.api import carray as api_carray

    for path in api_carray(artifact_path, out_dir, name=name, xxd_names=xxd_names, arena=arena):
        typer.echo(str(path))
    return 0
