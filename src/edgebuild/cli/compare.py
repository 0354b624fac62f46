"""`edgebuild compare BASE NEW`: per-target differences between two builds; exit 8 on a regression."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)


def compare(
    base: Path = typer.Argument(
        ..., metavar="BASE", help="The reference build: an --out folder, a target folder or a report.json."
    ),
    new: Path = typer.Argument(..., metavar="NEW", help="The build to judge, same kinds as BASE."),
    max_size_increase: str | None = typer.Option(
        None, "--max-size-increase", help="Artifact growth allowed: 5% (default), 2KiB, 5%+1KiB."
    ),
    max_accuracy_drop: float | None = typer.Option(
        None, "--max-accuracy-drop", help="Top-1 or agreement drop allowed, in points (0.5)."
    ),
    max_snr_drop: float | None = typer.Option(
        None, "--max-snr-drop", help="Output SNR drop allowed for models gated on SNR, dB (3)."
    ),
    max_latency_increase: str | None = typer.Option(
        None, "--max-latency-increase", help="p50 growth allowed beyond the measured noise: 10% (default), 0.05ms."
    ),
    max_arena_increase: str | None = typer.Option(
        None, "--max-arena-increase", help="Tensor arena growth allowed: 5% (default), 1KiB."
    ),
    max_flash_increase: str | None = typer.Option(
        None, "--max-flash-increase", help="Flash growth allowed: 5% (default), 4KiB."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="A TOML file with a [compare] table of the same "
        "max_* keys (or pyproject.toml's [tool.edgebuild.compare]); flags win.",
    ),
    target: list[str] = typer.Option([], "--target", "-t", help="Compare only these targets (repeatable)."),
    fmt: str = typer.Option("text", "--format", "-f", help="text, md (a pull-request comment) or json."),
    junit: Path | None = typer.Option(None, "--junit", help="Also write JUnit XML here (one test case per target)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the report here instead of stdout."),
) -> int:
    """Compare two builds per target: size, accuracy, latency, arena, flash, ops, checks. Exit 8 on a regression.

    When GITHUB_STEP_SUMMARY is set (GitHub Actions), the Markdown table is appended to it too.
    """
    from edgebuild.compare import Regressed, Thresholds, compare_builds, config_table, load_build
    from edgebuild.compare_output import to_json, to_junit, to_markdown, to_text
    from edgebuild.errors import UsageError

    renderers = {"text": to_text, "md": to_markdown, "markdown": to_markdown, "json": to_json}
    if fmt not in renderers:
        raise UsageError(f"--format {fmt!r}: use text, md or json")
    base_reports, new_reports = load_build(base), load_build(new)
    profile_table = next(
        (
            r["profile"]["compare"]
            for r in new_reports.values()
            if isinstance(r.get("profile"), dict) and isinstance(r["profile"].get("compare"), dict)
        ),
        None,
    )
    flags = {
        "max_size_increase": max_size_increase,
        "max_accuracy_drop": max_accuracy_drop,
        "max_snr_drop": max_snr_drop,
        "max_latency_increase": max_latency_increase,
        "max_arena_increase": max_arena_increase,
        "max_flash_increase": max_flash_increase,
    }
    thresholds = Thresholds.build(profile_table, config_table(config) if config else None, flags)
    result = compare_builds(
        base_reports, new_reports, thresholds, base_label=str(base), new_label=str(new), targets=target or None
    )
    text = renderers[fmt](result)
    if output is not None:
        output.write_text(text)
    else:
        typer.echo(text, nl=False)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(to_junit(result))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a", encoding="utf-8") as handle:
            handle.write(to_markdown(result) + "\n")
    if result.regressions:
        raise Regressed(f"{len(result.regressions)} regression(s) beyond the thresholds: {result.short()}")
    return 0
