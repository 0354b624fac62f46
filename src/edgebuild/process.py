"""Run an external tool with a hard timeout that also ends the tool's own child processes.

Shared by the compilers (Vela, edgetpu_compiler), the firmware builder and the device
benchmarks (ssh, scp, adb).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from edgebuild.errors import ExternalToolError


@dataclass(frozen=True)
class ToolRun:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        """stdout then stderr, as a user would have seen them in a terminal."""
        return self.stdout + (("\n" + self.stderr) if self.stderr.strip() else "")


def run_tool(
    argv: list[str],
    timeout_s: float,
    tool: str,
    cwd: Path | None = None,
    timeout_hint: str = "",
    *,
    errors: str | None = None,
    timeout_error: BaseException | None = None,
) -> ToolRun:
    """Run `argv`; ExternalToolError if it cannot start or outlives `timeout_s`.

    The tool runs in its own process group so a timeout kills everything it
    started (edgetpu_compiler forks a compilation child, ssh a ProxyCommand),
    not just the parent. stdin is /dev/null: a tool that prompts fails instead
    of hanging. A non-zero exit is returned, not raised: each caller words its
    own message.

    `errors` is how undecodable output bytes are handled (as in `open`; None is
    strict). `timeout_error`, when given, is raised on a timeout (after the
    tool is stopped) in place of the generic ExternalToolError, for callers
    that word their own timeout message or carry on after one.
    """
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors=errors,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ExternalToolError(f"{tool} was not found at '{argv[0]}'. Check the path or install it.") from None
    except PermissionError:
        raise ExternalToolError(
            f"{tool} at '{argv[0]}' is not executable (permission denied). "
            f"Run `chmod +x {argv[0]}` or point to the right file."
        ) from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        if timeout_error is not None:
            raise timeout_error from None
        raise ExternalToolError(
            f"{tool} did not finish within {timeout_s:g} s and was stopped. "
            f"{timeout_hint}Command: {' '.join(argv)}".rstrip()
        ) from None
    except BaseException:  # KeyboardInterrupt: never leave the tool running
        _kill_group(proc)
        proc.communicate()
        raise
    return ToolRun(tuple(argv), proc.returncode, stdout, stderr, round(time.perf_counter() - started, 3))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def tail(text: str, lines: int = 12) -> str:
    """The last non-empty lines of a tool's output, indented for quoting in an error message."""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join("    " + line for line in kept)
