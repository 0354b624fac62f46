"""`edgebuild cache info`, `edgebuild cache clear` and `edgebuild cache tflm`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from edgebuild.cache import BuildCache

cache_app = typer.Typer(help="Inspect or clear the build cache.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")


def _cache(cache_dir: Path | None) -> BuildCache:
    from edgebuild.cache import BuildCache, default_cache_dir

    return BuildCache(cache_dir or default_cache_dir())


@cache_app.command("info")
def info(cache_dir: Path | None = typer.Option(None, "--cache-dir")) -> None:
    """Where the cache is, how many entries, how big."""
    stats = _cache(cache_dir).info()
    typer.echo(f"{stats['path']}: {stats['entries']} entries, {stats['size_bytes'] / 1024:,.1f} KiB")


@cache_app.command("clear")
def clear(cache_dir: Path | None = typer.Option(None, "--cache-dir")) -> None:
    """Delete every cache entry."""
    cache = _cache(cache_dir)
    typer.echo(f"removed {cache.clear()} entries from {cache.root}")


@cache_app.command("tflm")
def tflm(
    board: str = typer.Option("mps2-an386", "--board", help="Board whose CPU the library is compiled for."),
    tflm_dir: Path | None = typer.Option(None, "--tflm-dir", help="TFLite Micro tree (else $EDGEBUILD_TFLM_DIR)."),
    reference: bool = typer.Option(False, "--reference", help="Also the reference-kernel library for the board."),
) -> None:
    """Compile TensorFlow Lite Micro's framework and common kernels into the cache, before the first mcu build."""
    from edgebuild.firmware.prepare import prepare

    kernels = ("cmsis-nn", "reference") if reference else ("cmsis-nn",)
    for library in prepare(board, kernels, tflm_dir=tflm_dir, log=typer.echo):
        typer.echo(
            f"{library['flavor']}: {library['sources']} sources, {library['objects_compiled']} compiled now, "
            f"{library['seconds']:.0f} s -> {library['path']}"
        )
