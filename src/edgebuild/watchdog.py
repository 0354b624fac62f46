"""Supervise a build thread: Ctrl-C/SIGTERM become a cancel event, and a stuck stage becomes an error.

Raising KeyboardInterrupt in the middle of a TFLite conversion aborts TensorFlow's threads, so signals only
set the cancel event; workers stop at their next stage boundary. A second Ctrl-C, or a SIGTERM build still
running after a short grace, removes the partial folders and exits at once. A stage past the stage timeout
ends the build with an error naming the target and stage (a hang must never be a silent wait).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from edgebuild import partials
from edgebuild.errors import EdgebuildError
from edgebuild.stages.context import Progress

SIGTERM_GRACE_S = 5.0
DEFAULT_STAGE_TIMEOUT_S = 1800.0
UNTIMED_STAGES = {"prune", "distill", "train", "device", "firmware"}  # own budgets / tool timeouts

Result = TypeVar("Result")
Running = dict[str, tuple[str, float]]  # target -> (stage, monotonic start)


def stage_timeout(requested: float | None) -> float:
    """The requested limit, else $EDGEBUILD_STAGE_TIMEOUT, else 30 minutes."""
    if requested is not None:
        return requested
    try:
        return float(os.environ.get("EDGEBUILD_STAGE_TIMEOUT", DEFAULT_STAGE_TIMEOUT_S))
    except ValueError:
        return DEFAULT_STAGE_TIMEOUT_S


def supervise(work: Callable[[threading.Event, Running], Result], progress: Progress, timeout: float) -> Result:
    """Run `work(cancelled, running)` in a thread; raise KeyboardInterrupt if it was cancelled."""
    cancelled = threading.Event()
    running: Running = {}
    results: list[Result] = []  # the worker's one result, handed to this thread
    failure: list[BaseException] = []
    terminated: list[float] = []

    def run() -> None:
        try:
            results.append(work(cancelled, running))
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)

    def on_interrupt(signum: int, frame: object) -> None:
        if cancelled.is_set() and signum == signal.SIGINT:
            abandon(130)
        cancelled.set()
        if signum == signal.SIGTERM:
            terminated.append(time.monotonic())
        progress.message("interrupted: stopping every target at its next stage boundary (Ctrl-C again to quit now)...")

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = (
        {sig: signal.signal(sig, on_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main_thread else {}
    )
    runner = threading.Thread(target=run, name="edgebuild-build", daemon=True)
    try:
        runner.start()
        while runner.is_alive():
            runner.join(0.2)
            if terminated and time.monotonic() - terminated[0] > SIGTERM_GRACE_S:
                abandon(143)
            stuck = _stuck_stage(running, timeout)
            if stuck is not None:
                cancelled.set()
                raise _stage_timeout_error(stuck, timeout)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if cancelled.is_set():
        raise KeyboardInterrupt
    if failure:
        raise failure[0]
    return results[0]


def _stuck_stage(running: Running, timeout: float) -> tuple[str, str, float] | None:
    now = time.monotonic()
    for target, (stage, started) in list(running.items()):
        if stage not in UNTIMED_STAGES and now - started > timeout:
            return target, stage, now - started
    return None


def _stage_timeout_error(stuck: tuple[str, str, float], timeout: float) -> EdgebuildError:
    """Dump every thread's stack for a bug report, remove partial folders, and name the stage."""
    import faulthandler
    import tempfile

    from edgebuild.errors import StageTimeout

    target, stage, seconds = stuck
    fd, stacks = tempfile.mkstemp(prefix="edgebuild-stuck-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        faulthandler.dump_traceback(handle, all_threads=True)
    partials.remove_active_partials()
    return StageTimeout(
        f"Target '{target}' spent {seconds:.0f} s in its '{stage}' stage, past the {timeout:.0f} s stage limit, "
        f"so the build was stopped instead of waiting forever. Thread stacks are in {stacks}: please attach "
        "them to a bug report. Retry with -j 1 to rule out a parallel-build problem, or raise the limit with "
        "EDGEBUILD_STAGE_TIMEOUT=SECONDS for a model that is just slow. No partial artifacts were left behind."
    )


def abandon(exit_code: int) -> None:
    """Exit now, without waiting for stage boundaries, leaving no partial folders behind."""
    partials.remove_active_partials()
    sys.stderr.write("edgebuild: interrupted; no partial artifacts were left behind\n")
    sys.stderr.flush()
    os._exit(exit_code)
