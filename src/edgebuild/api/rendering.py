"""Progress while building (lines on stderr, a live block in Jupyter) and the summary tables."""

from __future__ import annotations

import html
import threading
from typing import Any

from edgebuild.errors import UsageError

# ---------------------------------------------------------------------------------------------- progress


class _LineProgress:
    """`target  stage  seconds  note` on stderr as each stage finishes (what the CLI prints)."""

    def __init__(self) -> None:
        from edgebuild.native_output import TerminalStream

        self._stream = TerminalStream(2)

    def stage_started(self, target: str, stage: str) -> None:
        pass

    def stage_finished(self, target: str, stage: str, seconds: float, note: str = "") -> None:
        self.message(f"  {target:<10} {stage:<10} {seconds:7.2f} s  {note}")

    def message(self, text: str) -> None:
        self._stream.write(text.rstrip() + "\n")
        self._stream.flush()


class _NotebookProgress:
    """One live output block in Jupyter, updated in place as stages run (no stderr noise)."""

    def __init__(self) -> None:
        from IPython.display import HTML, display

        self._html: Any = HTML
        self._lines: list[str] = []
        self._running: dict[str, str] = {}
        self._lock = threading.Lock()
        start = HTML("<pre>edgebuild: starting...</pre>")  # type: ignore[no-untyped-call]
        self._handle: Any = display(start, display_id=True)  # type: ignore[no-untyped-call]

    def _render(self) -> None:
        running = [f"  {t:<10} {s:<10} ..." for t, s in self._running.items()]
        body = html.escape("\n".join(self._lines + running))
        self._handle.update(self._html(f"<pre style='margin:0'>{body}</pre>"))

    def stage_started(self, target: str, stage: str) -> None:
        with self._lock:
            self._running[target] = stage
            self._render()

    def stage_finished(self, target: str, stage: str, seconds: float, note: str = "") -> None:
        with self._lock:
            self._running.pop(target, None)
            self._lines.append(f"  {target:<10} {stage:<10} {seconds:7.2f} s  {note}".rstrip())
            self._render()

    def message(self, text: str) -> None:
        with self._lock:
            self._lines.append(text)
            self._render()


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython's ZMQ shell); never imports IPython itself."""
    import sys

    if "IPython" not in sys.modules:
        return False
    try:
        shell = sys.modules["IPython"].get_ipython()
    except AttributeError:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _progress(progress: Any) -> Any:
    from edgebuild.stages.context import SilentProgress

    if progress is False or progress is None:
        return SilentProgress()
    if progress is True or progress == "auto":
        return _NotebookProgress() if _in_notebook() else _LineProgress()
    if all(hasattr(progress, m) for m in ("stage_started", "stage_finished", "message")):
        return progress
    raise UsageError(
        "progress must be 'auto', True, False, or an object with stage_started, stage_finished and message methods."
    )


# ---------------------------------------------------------------------------------------------- tables


def _text_table(columns: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _html_table(columns: list[str], rows: list[list[str]], escape: bool = True, title: str | None = None) -> str:
    cell = html.escape if escape else (lambda s: s)
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    caption = f"<caption style='text-align:left'><b>{title}</b></caption>" if title else ""
    return f"<table class='edgebuild'>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _status_html(passed: bool, ok: str, failed: str) -> str:
    return f"<span style='color:#2e7d32'>{ok}</span>" if passed else f"<b style='color:#c62828'>{failed}</b>"
