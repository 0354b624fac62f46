"""Terminal output: a progress line per stage (stderr) and result tables (stdout)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, cast

from rich.console import Console
from rich.table import Table

from edgebuild.native_output import TerminalStream
from edgebuild.report import accuracy_text, first_p50, kib

if TYPE_CHECKING:
    from edgebuild.api import TargetBuild

# Tables stay readable in CI logs and pipes, where rich would otherwise assume 80 columns.
_WIDTH = None if sys.stdout.isatty() else 140
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
# Progress lines are printed while worker threads capture native output on fd 2.
# rich types `file` as IO[str]; it calls write, flush, isatty and fileno, which TerminalStream has.
err = Console(file=cast("IO[str]", TerminalStream(2)), highlight=False, soft_wrap=True, width=_WIDTH)


class StageProgress:
    """Prints `target  stage ... seconds  note` as each stage finishes."""

    def stage_started(self, target: str, stage: str) -> None:
        """Nothing: with parallel targets an in-place 'running' line would garble; finished lines suffice."""

    def stage_finished(self, target: str, stage: str, seconds: float, note: str = "") -> None:
        err.print(f"  {target:<10} {stage:<10} {seconds:7.2f} s  {note}")

    def message(self, text: str) -> None:
        err.print(text)


def build_summary(results: Sequence[TargetBuild]) -> Table:
    table = Table(title="edgebuild results", title_justify="left")
    for column in (
        "target",
        "size",
        "vs fp32",
        "I/O",
        "accuracy (vs float)",
        "agree",
        "host p50",
        "arena",
        "status",
        "artifact",
    ):
        table.add_column(column, no_wrap=column != "artifact")
    for r in results:
        rep = r.report
        if rep is None or (r.error is not None and not rep):
            table.add_row(r.target, "-", "-", "-", "-", "-", "-", "-", "[red]ERROR[/red]", str(r.error).split(".")[0])
            continue
        art = rep["artifact"]
        ratio = "-"
        if rep.get("float_reference"):
            ratio = f"{art['size_bytes'] / rep['float_reference']['size_bytes']:.2f}x"
        io = f"{art['inputs'][0]['dtype']}"
        acc = rep.get("validation", {}).get("accuracy") or {}
        accuracy = accuracy_text(acc)
        agreement = f"{100 * acc['agreement']:.1f}%" if acc.get("agreement") is not None else "-"
        p50_ms = first_p50(rep.get("benchmark"))
        p50 = f"{p50_ms:.3f} ms" if p50_ms is not None else "-"
        arena = (rep.get("validation") or {}).get("arena", {}).get("recommended_bytes")
        status = "[green]ok[/green]" if r.passed else "[red]FAILED[/red]"
        table.add_row(
            r.target,
            kib(art["size_bytes"]),
            ratio,
            io,
            accuracy,
            agreement,
            p50,
            kib(arena) if arena else "-",
            status,
            str(r.out_dir / art["path"]),
        )
    lines = [
        line
        for r in results
        if (line := firmware_line(r.target, r.report.get("firmware") if r.report is not None else None))
    ]
    if lines:
        table.caption, table.caption_justify = "\n".join(lines), "left"
    return table


def firmware_line(target: str, firmware: dict[str, Any] | None) -> str | None:
    """The firmware's result in one line under the table: what ran where, and what it measured."""
    if not firmware:
        return None
    board = (firmware.get("board") or {}).get("name", "?")
    if firmware.get("status") != "ok":
        from edgebuild.firmware.render import stage_note

        return f"{target}: firmware on {board} {stage_note(firmware)}"
    device, comparison = firmware.get("device") or {}, firmware.get("comparison") or {}
    cost = (device.get("instructions_per_inference") or {}).get("median")
    agreement = comparison.get("top1_agreement")
    parts = [
        f"{comparison.get('samples', 0)} samples ran on QEMU {board} ({firmware.get('kernels')})",
        f"max {comparison.get('max_steps')} step(s) from LiteRT reference"
        + (f", top-1 agreement {100 * agreement:.0f}%" if agreement is not None else ""),
        f"arena used {device.get('arena_used_bytes', 0):,} of {device.get('arena_size_bytes', 0):,} B",
        f"flash {kib((firmware.get('flash') or {}).get('total_bytes_without_samples'))}",
        f"RAM {kib((firmware.get('ram') or {}).get('total_bytes'))}",
    ]
    if cost:
        parts.append(f"{cost / 1e6:.2f} M instructions/inference")
    return f"{target} firmware: " + "; ".join(parts)


def validation_table(result: dict[str, Any], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("check", "result", "details"):
        table.add_column(column)
    for check in result["checks"]:
        table.add_row(check["name"], "[green]pass[/green]" if check["passed"] else "[red]FAIL[/red]", check["summary"])
        for finding in check.get("findings", [])[:20]:
            if finding.get("severity") == "error":
                table.add_row(
                    "",
                    "",
                    f"  op #{finding.get('op_index')} {finding.get('op')}: {finding['message']} Fix: {finding['fix']}",
                )
    return table


def benchmark_table(result: dict[str, Any], title: str) -> Table:
    runtime = result.get("runtime") or {}
    table = Table(title=f"{title} ({runtime.get('name', 'LiteRT')} {runtime.get('version', '')})", title_justify="left")
    for column in ("threads", "p50 ms", "p90 ms", "p99 ms", "mean ms", "std ms", "runs", "load ms"):
        table.add_column(column, justify="right")
    for threads, r in result["threads"].items():
        table.add_row(
            threads,
            f"{r['p50_ms']:.3f}",
            f"{r['p90_ms']:.3f}",
            f"{r['p99_ms']:.3f}",
            f"{r['mean_ms']:.3f}",
            f"{r['std_ms']:.3f}",
            str(r["runs"]),
            f"{r['load_ms']:.1f}",
        )
    return table
