"""What `build` returns: a `TargetBuild` per target, gathered in a `BuildResult`."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from edgebuild.api.rendering import _html_table, _status_html, _text_table
from edgebuild.api.reports import BenchmarkReport, Check, Report, ValidationReport
from edgebuild.errors import EdgebuildError, GateFailed


@dataclass
class TargetBuild:
    """One target of a build: its folder, artifact and report, or the error that stopped it."""

    target: str
    """Profile name."""
    out_dir: Path
    """OUT/<target>/."""
    report: Report | None
    """None when the target failed before writing a report."""
    error: EdgebuildError | None = None
    """The failure (a GateFailed only with gates=True)."""
    cached: bool = False
    """Restored from the build cache."""

    @property
    def passed(self) -> bool:
        """No error, and every validation check passed."""
        return self.error is None and self.report is not None and self.report.passed

    @property
    def artifact_path(self) -> Path | None:
        """The `.tflite` (None when the target failed before writing it)."""
        return None if self.report is None else self.report.artifact.path

    @property
    def artifact_bytes(self) -> bytes | None:
        """The `.tflite` file's bytes, read from `artifact_path`."""
        path = self.artifact_path
        return None if path is None else path.read_bytes()

    @property
    def failed_checks(self) -> list[Check]:
        """Validation checks that failed."""
        return [] if self.report is None or self.report.validation is None else self.report.validation.failed_checks

    @property
    def validation(self) -> ValidationReport | None:
        """Shortcut for `report.validation`."""
        return None if self.report is None else self.report.validation

    @property
    def benchmark(self) -> BenchmarkReport | None:
        """Shortcut for `report.benchmark`."""
        return None if self.report is None else self.report.benchmark

    def __repr__(self) -> str:
        state = "error" if self.error is not None and self.report is None else ("passed" if self.passed else "FAILED")
        return f"TargetBuild(target={self.target!r}, {state}, artifact={str(self.artifact_path)!r})"


class BuildResult(Sequence[TargetBuild]):
    """Every target of one build, in the order asked; `result["mcu"]` picks one by name.

    Displays as the summary table (with the comparison chart for several targets) in Jupyter, and as a
    plain-text table elsewhere.
    """

    def __init__(self, targets: list[TargetBuild], out: Path) -> None:
        self.targets: tuple[TargetBuild, ...] = tuple(targets)
        """Every target, in the order asked."""
        self.out: Path = out
        """The output root (OUT/<target>/ folders, summary.md, summary.png)."""

    @property
    def passed(self) -> bool:
        """Every target built without error and passed validation."""
        return all(t.passed for t in self.targets)

    @property
    def failed_checks(self) -> dict[str, list[Check]]:
        """Failed validation checks per target (only targets with failures)."""
        return {t.target: t.failed_checks for t in self.targets if t.failed_checks}

    @property
    def errors(self) -> dict[str, EdgebuildError]:
        """Errors per target (a GateFailed appears only with gates=True)."""
        return {t.target: t.error for t in self.targets if t.error is not None}

    def raise_for_errors(self) -> None:
        """Raise the most serious target error (real errors outrank gate failures), carrying this result."""
        errors = [t.error for t in self.targets if t.error is not None]
        if errors:
            error = max(errors, key=lambda e: not isinstance(e, GateFailed))
            error.result = self  # type: ignore[attr-defined]
            raise error

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for t in self.targets:
                if t.target == key:
                    return t
            raise KeyError(f"No target {key!r} in this build (targets: {', '.join(self.keys())}).")
        return self.targets[key]

    def __len__(self) -> int:
        return len(self.targets)

    def keys(self) -> list[str]:
        """Target names, in build order."""
        return [t.target for t in self.targets]

    _COLUMNS: ClassVar[list[str]] = [
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
    ]

    def _rows(self) -> list[tuple[TargetBuild, list[str]]]:
        from edgebuild.report import accuracy_text, kib

        rows = []
        for t in self.targets:
            if t.report is None:
                rows.append((t, [t.target, *["-"] * 7, "ERROR", str(t.error).split(". ")[0]]))
                continue
            rep = t.report
            ratio = f"{rep.artifact.size_bytes / rep.float_size_bytes:.2f}x" if rep.float_size_bytes else "-"
            accuracy = rep.validation.accuracy if rep.validation else None
            agree = f"{100 * accuracy.agreement:.1f}%" if accuracy and accuracy.agreement is not None else "-"
            p50 = rep.benchmark.p50_ms if rep.benchmark else None
            arena = rep.validation.arena.recommended_bytes if rep.validation and rep.validation.arena else None
            io = rep.artifact.inputs[0].dtype if rep.artifact.inputs else "-"
            rows.append(
                (
                    t,
                    [
                        t.target,
                        kib(rep.artifact.size_bytes),
                        ratio,
                        io,
                        accuracy_text(accuracy.raw if accuracy else None),
                        agree,
                        f"{p50:.3f} ms" if p50 is not None else "-",
                        kib(arena) if arena else "-",
                        "ok" if t.passed else "FAILED",
                        str(rep.artifact.path),
                    ],
                )
            )
        return rows

    def __str__(self) -> str:
        text = _text_table(self._COLUMNS, [cells for _, cells in self._rows()])
        for t in self.targets:
            for check in t.failed_checks:
                text += f"\n{t.target}: {check.name} failed: {check.summary}"
        return text

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = []
        for t, cells in self._rows():
            cells = [html.escape(c) for c in cells]
            cells[8] = _status_html(t.passed, cells[8], cells[8])
            rows.append(cells)
        parts = [
            _html_table(self._COLUMNS, rows, escape=False, title=f"edgebuild results ({html.escape(str(self.out))})")
        ]
        for t in self.targets:
            for check in t.failed_checks:
                parts.append(
                    f"<p><b>{html.escape(t.target)}</b>: {html.escape(check.name)} failed: "
                    f"{html.escape(check.summary)}</p>"
                )
        chart = self.out / "summary.png"
        if len(self.targets) > 1 and chart.is_file():
            data = base64.b64encode(chart.read_bytes()).decode()
            parts.append(f'<img alt="size, accuracy and latency per target" src="data:image/png;base64,{data}"/>')
        return "\n".join(parts)
