"""`edgebuild optimize MODEL --target T --data D [--budget K=V] [--max-drop P] [--trials N] [--time-budget 2h]`."""

from __future__ import annotations

from pathlib import Path

import typer

from edgebuild.errors import GateFailed


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)


def optimize(
    model: Path = typer.Argument(..., help="SavedModel folder, .keras or .h5 file."),
    target: str = typer.Option(..., "--target", "-t", help="Built-in target name or a profile .toml."),
    data: Path | None = typer.Option(None, "--data", "-d", help="Calibration, training and validation data."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output root (default build/<model name>)."),
    budget: list[str] = typer.Option([], "--budget", help="flash=1MiB, ram=256KiB or latency_ms=50. Repeats."),
    max_drop: float | None = typer.Option(None, "--max-drop", help="Accuracy points the artifact may lose."),
    trials: int | None = typer.Option(None, "--trials", min=1, help="Candidates built at most (cheap ones first)."),
    time_budget: str | None = typer.Option(None, "--time-budget", help="Stop starting new rounds after e.g. 2h."),
    set_: list[str] = typer.Option([], "--set", help="Override a profile key (also [optimize] keys). Repeats."),
    executor: str = typer.Option("local", "--executor", help="local or ray."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="auto, HOST:PORT or ray://HOST:10001."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Local executor processes (default: cores)."),
) -> int:
    """Search pruning, width, precision, PTQ/QAT and distillation for the smallest artifact meeting the budgets."""
    from edgebuild.cli.render import out as console
    from edgebuild.executors import make_executor
    from edgebuild.optimize.run import optimize as run_optimize
    from edgebuild.optimize.run import parse_budgets, parse_duration
    from edgebuild.pipeline import default_out_dir

    budgets = parse_budgets(budget, max_drop)
    seconds = parse_duration(time_budget)
    root = out or default_out_dir(model)
    runner = make_executor(executor, workers=workers, ray_address=ray_address)
    try:
        search, best = run_optimize(
            model,
            target,
            data,
            root,
            budgets,
            runner,
            overrides=tuple(set_),
            trials=trials,
            time_budget_s=seconds,
            progress=lambda line: console.print(line, highlight=False, markup=False),
        )
    finally:
        runner.close()
    console.print((search.out / "front.md").read_text(), highlight=False, markup=False)
    if best is None:
        raise GateFailed(
            f"No candidate for '{search.profile.name}' meets the budgets; the front and every candidate's report are "
            f"in {search.out}. "
            "Loosen a budget (--budget, --max-drop) or widen the [optimize] space (--set optimize.KEY=...)."
        )
    console.print(f"chosen: {best.candidate.name} -> {search.out / 'best' / search.profile.name}", highlight=False)
    return 0
