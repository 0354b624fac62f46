"""Executors: where the builds of a matrix or an `optimize` search run.

One interface (`Executor.run(tasks, on_done)`) with two implementations: `local` (worker processes on this
machine) and `ray` (tasks on a Ray cluster; the optional extra `edgebuild[ray]`). A task is one ordinary
edgebuild build of one model for one target (`edgebuild.executors.task.run_task`), so each is cached like any
other build and a rerun reuses what was done. Nothing below the pipeline knows which executor runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from edgebuild.errors import UsageError
from edgebuild.executors.task import BuildTask, TaskOutcome

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    name: str
    workers: int

    def run(
        self, tasks: Sequence[BuildTask], out_root: Path, on_done: Callable[[TaskOutcome], None] | None = None
    ) -> list[TaskOutcome]:
        """Run every task (its folder will be out_root/task.key); call on_done as each finishes.

        Returns the outcomes in the order of `tasks`; the caller writes them (`task.write_outcome`).
        """
        ...

    def close(self) -> None: ...


def make_executor(name: str, *, workers: int | None = None, ray_address: str | None = None) -> Executor:
    """The executor named by `--executor` (errors name the valid choices and, for Ray, the extra)."""
    if name == "local":
        from edgebuild.executors.local import LocalExecutor

        if ray_address is not None:
            raise UsageError("--ray-address needs --executor ray.")
        return LocalExecutor(workers)
    if name == "ray":
        from edgebuild.executors.ray import RayExecutor

        return RayExecutor(ray_address)
    raise UsageError(f"--executor {name!r} is not known; use one of {', '.join(EXECUTORS)}.")


__all__ = ["EXECUTORS", "BuildTask", "Executor", "TaskOutcome", "make_executor"]
