"""`edgebuild flash OUT/mcu [--board NAME] [--probe UID]`: the mcu build's firmware on a real board, via pyOCD."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("flash")(flash)


def flash(
    build_dir: Path = typer.Argument(..., metavar="OUT/mcu", help="An mcu target's build folder."),
    board: str | None = typer.Option(
        None, "--board", help="A board name (targets/boards/) or .toml path; default: the board the build used."
    ),
    probe: str | None = typer.Option(None, "--probe", help="The debug probe's unique ID (or part of it)."),
    tflm_dir: Path | None = typer.Option(
        None, "--tflm-dir", help="TFLite Micro tree (else $EDGEBUILD_TFLM_DIR or the build's)."
    ),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the runner's results."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> int:
    """Build the firmware for a board, flash it with pyOCD and print what it ran (exit 10 without a probe)."""
    from edgebuild.cli.render import out
    from edgebuild.firmware.flash import flash_and_run

    result = flash_and_run(build_dir, board, probe, tflm_dir, timeout, log=lambda text: out.print(text, markup=False))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        status = "ran" if result["done"] else "did not finish"
        out.print(
            f"{result['elf']} on {result['board']} (probe {result['probe']}): {status}; arena used "
            f"{result['arena_used_bytes']} bytes; outputs {result['outputs'][:2]}",
            markup=False,
        )
    return 0 if result["done"] else 10
