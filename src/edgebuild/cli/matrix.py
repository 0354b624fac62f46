"""`edgebuild build --matrix edgebuild.toml [--executor local|ray]`: every cell, then one table."""

from __future__ import annotations

from pathlib import Path

from edgebuild.errors import EdgebuildError


def build_matrix(
    path: Path,
    *,
    executor: str,
    ray_address: str | None,
    workers: int | None,
    overrides: tuple[str, ...],
    gates: bool,
    use_cache: bool,
    cache_dir: Path | None,
) -> int:
    from rich.table import Table

    from edgebuild.cli.render import out as console
    from edgebuild.executors import TaskOutcome, make_executor
    from edgebuild.matrix import load_matrix, run_matrix

    tasks, out = load_matrix(path, gates=gates, use_cache=use_cache, cache_dir=cache_dir, extra_overrides=overrides)
    runner = make_executor(executor, workers=workers, ray_address=ray_address)
    console.print(f"matrix: {len(tasks)} builds on the {runner.name} executor ({runner.workers} workers) -> {out}")
    done: list[TaskOutcome] = []

    def progress(outcome: TaskOutcome) -> None:
        done.append(outcome)
        state = "cached" if outcome.cached else ("ok" if outcome.error is None else "FAILED")
        console.print(
            f"  [{len(done)}/{len(tasks)}] {outcome.key}: {state} in {outcome.seconds:.1f} s on {outcome.worker}"
        )

    try:
        outcomes = run_matrix(runner, tasks, out, progress)
    finally:
        runner.close()
    table = Table(title=f"edgebuild matrix ({out})")
    for column in ("cell", "size", "status", "seconds"):
        table.add_column(column)
    for o in outcomes:
        size = len(o.files.get("model.tflite", b""))
        status = "ok" if o.error is None else o.error[1].split(". ")[0]
        table.add_row(o.key, f"{size:,} B" if size else "-", status, f"{o.seconds:.1f}")
    console.print(table)
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        try:
            failed[0].raise_error()
        except EdgebuildError as exc:
            raise type(exc)(
                f"{len(failed)} of {len(outcomes)} matrix cells failed; first: {failed[0].key}: {exc}"
            ) from None
    return 0
