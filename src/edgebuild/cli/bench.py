"""`edgebuild bench ARTIFACT.tflite [--threads N] [--runs N] [--warmup N]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    artifact_path: Path = typer.Argument(..., metavar="ARTIFACT", help="A .tflite file."),
    threads: List[int] = typer.Option([1], "--threads", help="Thread count; repeats."),
    runs: int = typer.Option(100, "--runs", min=1),
    warmup: int = typer.Option(10, "--warmup", min=0),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Real input samples (.npz/.npy)."),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Measure invoke() latency in LiteRT on this host."""
    from edgebuild.artifact import read_artifact
    from edgebuild.bench import benchmark_threads
    from edgebuild.cli.render import benchmark_table, out
    from edgebuild.data import check_fits, load_dataset

    artifact = read_artifact(artifact_path)
    inputs = None
    if data is not None:
        shape = (None, *artifact.inputs[0].shape[1:])
        inputs = check_fits(load_dataset(data, shape), shape, str(artifact_path)).x
    result = benchmark_threads(artifact_path, threads, runs=runs, warmup=warmup, inputs=inputs)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        out.print(benchmark_table(result, str(artifact_path)))
    return 0
