"""One build task: its inputs travel as bytes, its outputs come back as bytes, the driver writes them.

Shipping the model and data as bytes (Ray's object store, or a process pipe locally) means a worker needs no
shared file system. The worker builds in a temporary folder and returns every file of the target folder; the
temporary paths in text files are replaced by the paths the driver will use, so a task's files are the same
bytes wherever it ran. The driver writes a task's folder atomically (a sibling temporary folder renamed into
place). User errors (`EdgebuildError`) come back as values, never as exceptions, so no executor retries them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebuild import errors
from edgebuild.partials import move_into_place


@dataclass(frozen=True)
class Bundle:
    """A file or folder as bytes: `name` is its base name, `files` maps relative paths ("" for a file)."""

    name: str
    files: dict[str, bytes]

    @classmethod
    def pack(cls, path: Path) -> Bundle:
        if path.is_file():
            return cls(path.name, {"": path.read_bytes()})
        files = {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
        return cls(path.name, files)

    def unpack(self, folder: Path) -> Path:
        root = folder / self.name
        for rel, blob in self.files.items():
            dest = root / rel if rel else root
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(blob)
        return root


@dataclass(frozen=True)
class BuildTask:
    """One model built for one target: `key` is the output folder relative to the run's output root."""

    key: str
    model: Path
    target: str
    data: Path | None = None
    overrides: tuple[str, ...] = ()
    gates: bool = True
    use_cache: bool = True
    cache_dir: Path | None = None


@dataclass
class TaskOutcome:
    key: str
    files: dict[str, bytes] = field(default_factory=dict)  # relative to the task's folder
    report: dict[str, Any] | None = None
    error: tuple[str, str] | None = None  # (EdgebuildError subclass name, message)
    cached: bool = False
    seconds: float = 0.0
    worker: str = ""  # host:pid that ran it

    def raise_error(self) -> None:
        """Re-raise a worker's user error as its own class (exit codes stay the pipeline's)."""
        if self.error is not None:
            cls = getattr(errors, self.error[0], errors.EdgebuildError)
            raise cls(self.error[1])


def run_task(task: BuildTask, model: Bundle, data: Bundle | None, out: str) -> TaskOutcome:
    """Build `task` from the shipped inputs in a temporary folder; `out` is the folder the driver will write."""
    from edgebuild.api import build

    start = time.monotonic()
    outcome = TaskOutcome(task.key, worker=f"{socket.gethostname()}:{os.getpid()}")
    with tempfile.TemporaryDirectory(prefix=_TEMP_PREFIX) as tmp:
        root = Path(tmp)
        model_path = model.unpack(root / "model")
        data_path = data.unpack(root / "data") if data is not None else None
        renames = {f"model/{model.name}": str(task.model), "out": str(Path(out).parent)}
        if data is not None and task.data is not None:
            renames[f"data/{data.name}"] = str(task.data)
        result = None
        try:
            result = build(
                model_path,
                [task.target],
                data_path,
                out=root / "out",
                overrides=list(task.overrides),
                gates=task.gates,
                jobs=1,
                cache=task.use_cache,
                cache_dir=task.cache_dir,
                progress=False,
            )
        except errors.EdgebuildError as exc:
            outcome.error = (type(exc).__name__, _relabel(str(exc), renames))
            result = getattr(exc, "result", None)
        if result is not None and len(result):
            built = result[0]
            outcome.cached = built.cached
            if built.out_dir.is_dir():
                outcome.files = _collect(built.out_dir, renames)
            if "report.json" in outcome.files:
                outcome.report = json.loads(outcome.files["report.json"])
    outcome.seconds = time.monotonic() - start
    return outcome


def write_outcome(outcome: TaskOutcome, out: Path) -> None:
    """Replace `out` with the outcome's files in one rename (readers never see a half-written folder)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
    for rel, blob in outcome.files.items():
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(blob)
    tmp.mkdir(parents=True, exist_ok=True)
    move_into_place(tmp, out)


def _collect(folder: Path, renames: dict[str, str]) -> dict[str, bytes]:
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            blob = path.read_bytes()
            if _TEMP_PREFIX.encode() in blob:
                blob = _relabel(blob.decode("utf-8", "surrogateescape"), renames).encode("utf-8", "surrogateescape")
            files[str(path.relative_to(folder))] = blob
    return files


_TEMP_PREFIX = "edgebuild-task-"


def _relabel(text: str, renames: dict[str, str]) -> str:
    """Temporary task paths (this task's, or an earlier task's in a cached report) -> the driver's paths."""
    names = "|".join(re.escape(k) for k in sorted(renames, key=len, reverse=True))
    pattern = re.escape(tempfile.gettempdir()) + "/" + _TEMP_PREFIX + r"[A-Za-z0-9_]+/(" + names + ")"
    return re.sub(pattern, lambda m: renames[m.group(1)], text)
