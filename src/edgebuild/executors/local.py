"""The local executor: build tasks in worker processes on this machine (no Ray needed)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from edgebuild.executors.task import BuildTask, Bundle, TaskOutcome, run_task


class LocalExecutor:
    """A pool of spawned processes (TensorFlow is not fork-safe); each task is one edgebuild build."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        from edgebuild.pipeline import default_jobs

        self.workers = workers or default_jobs(None, 64)
        self._pool: ProcessPoolExecutor | None = None

    def run(
        self, tasks: Sequence[BuildTask], out_root: Path, on_done: Callable[[TaskOutcome], None] | None = None
    ) -> list[TaskOutcome]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
            )
        bundles: dict[Path, Bundle] = {}
        futures: dict[Future[TaskOutcome], int] = {}
        for i, task in enumerate(tasks):
            model = bundles.setdefault(task.model, Bundle.pack(task.model))
            data = bundles.setdefault(task.data, Bundle.pack(task.data)) if task.data else None
            futures[self._pool.submit(run_task, task, model, data, str(out_root / task.key))] = i
        outcomes: list[TaskOutcome | None] = [None] * len(tasks)
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = future.result()
                outcomes[futures[future]] = outcome
                if on_done is not None:
                    on_done(outcome)
        return [o for o in outcomes if o is not None]

    def close(self) -> None:
        """Stop the workers; one that does not leave in time is killed."""
        if self._pool is None:
            return
        processes = list(self._pool._processes.values())  # no public handle before Python 3.14
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        deadline = time.monotonic() + EXIT_GRACE_S
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(EXIT_GRACE_S)


EXIT_GRACE_S = 5.0


def _worker_init() -> None:
    """Ctrl-C is the driver's to handle; at exit the worker ends its own children and leaves at once."""
    from multiprocessing.util import Finalize

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    Finalize(None, _leave_now, exitpriority=100)


def _leave_now() -> None:
    """Run first among the exit finalizers: a worker would otherwise wait forever for its TFLite Micro process
    (whose shutdown is registered with atexit, which multiprocessing children skip) and TensorFlow's threads."""
    for child in multiprocessing.active_children():
        child.kill()
        child.join(EXIT_GRACE_S)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
