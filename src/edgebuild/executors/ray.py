"""The Ray executor: each build task is a Ray task on a cluster (`pip install 'edgebuild[ray]'`).

Tasks declare their resources (one CPU and `TASK_MEMORY` bytes by default), take the model and data from
Ray's object store (put once per run, however many targets use them) and return the target folder's bytes,
which the driver writes. A worker process or node that dies mid-task is retried by Ray (`max_retries`);
edgebuild's own errors come back as values and exceptions are not retried (`retry_exceptions=False`), so a
user error costs one attempt. Workers need edgebuild and its stack installed (the same versions as the
driver: a cached build's key includes them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgebuild.errors import ExternalToolError, UsageError
from edgebuild.executors.task import BuildTask, Bundle, TaskOutcome, run_task

TASK_MEMORY = 2 * 1024**3  # a TensorFlow conversion with validation peaks around 1.5 GiB
MAX_RETRIES = 3


class RayExecutor:
    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: float = 1,
        memory: int = TASK_MEMORY,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError(
                "--executor ray needs Ray, which is not installed. Install the extra: pip install 'edgebuild[ray]' "
                "(or use --executor local)."
            ) from None
        self._ray = ray
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ExternalToolError(
                f"Could not connect to the Ray cluster at {address!r}: {exc}. Start one (`ray start --head`) or pass "
                "--ray-address auto|HOST:PORT|ray://HOST:10001."
            ) from None
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        self.workers = max(1, int(resources.get("CPU", 1) // num_cpus))
        self._remote = ray.remote(num_cpus=num_cpus, memory=memory, max_retries=max_retries, retry_exceptions=False)(
            run_task
        )

    def run(
        self, tasks: Sequence[BuildTask], out_root: Path, on_done: Callable[[TaskOutcome], None] | None = None
    ) -> list[TaskOutcome]:
        ray = self._ray
        refs: dict[Path, Any] = {}

        def put(path: Path) -> Any:
            if path not in refs:
                refs[path] = ray.put(Bundle.pack(path))
            return refs[path]

        pending = {
            self._remote.remote(
                task, put(task.model), put(task.data) if task.data else None, str(out_root / task.key)
            ): i
            for i, task in enumerate(tasks)
        }
        outcomes: list[TaskOutcome | None] = [None] * len(tasks)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                try:
                    outcome: TaskOutcome = ray.get(ref)
                except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
                    for other in pending:
                        ray.cancel(other)
                    raise ExternalToolError(
                        f"Ray: the build of {tasks[index].key} lost its worker {MAX_RETRIES + 1} times ({exc}); "
                        "check the nodes' memory (each task asks for "
                        f"{TASK_MEMORY // 1024**2} MiB) and `ray status`."
                    ) from None
                except ray.exceptions.RayTaskError as exc:  # a bug inside the build: show it as such
                    raise exc.as_instanceof_cause() from None
                outcomes[index] = outcome
                if on_done is not None:
                    on_done(outcome)
        return [o for o in outcomes if o is not None]

    def close(self) -> None:
        if self._ray.is_initialized():  # disconnects from a cluster; stops the one ray.init() started
            self._ray.shutdown()
