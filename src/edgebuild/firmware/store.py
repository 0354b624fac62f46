"""The TFLite Micro cache folder and its plumbing: content hashes, atomic writes, file locks, job count."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import resource
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

Log = Callable[[str], None]

CACHE_LAYOUT = 1  # bump when the cache layout or key composition changes


def default_jobs() -> int:
    env = os.environ.get("EDGEBUILD_JOBS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def tflm_cache_dir() -> Path:
    if os.environ.get("EDGEBUILD_TFLM_CACHE_DIR"):  # absolute: Makefiles run in other folders read its paths
        return Path(os.environ["EDGEBUILD_TFLM_CACHE_DIR"]).resolve()
    from edgebuild.cache import default_cache_dir

    return default_cache_dir() / "tflm"


def _stderr_log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sha(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextmanager
def _file_lock(path: Path, log: Log, what: str) -> Iterator[None]:
    """An exclusive lock shared with other edgebuild processes (two builds never compile the same library twice)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another edgebuild process that is building {what}...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
