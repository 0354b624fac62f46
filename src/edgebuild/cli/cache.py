"""`edgebuild cache info` and `edgebuild cache clear`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

cache_app = typer.Typer(help="Inspect or clear the build cache.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")


def _cache(cache_dir: Optional[Path]):
    from edgebuild.cache import BuildCache, default_cache_dir

    return BuildCache(cache_dir or default_cache_dir())


@cache_app.command("info")
def info(cache_dir: Optional[Path] = typer.Option(None, "--cache-dir")) -> None:
    """Where the cache is, how many entries, how big."""
    stats = _cache(cache_dir).info()
    typer.echo(f"{stats['path']}: {stats['entries']} entries, {stats['size_bytes'] / 1024:,.1f} KiB")


@cache_app.command("clear")
def clear(cache_dir: Optional[Path] = typer.Option(None, "--cache-dir")) -> None:
    """Delete every cache entry."""
    cache = _cache(cache_dir)
    typer.echo(f"removed {cache.clear()} entries from {cache.root}")
