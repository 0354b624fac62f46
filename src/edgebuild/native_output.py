"""Capture what native code (TensorFlow, the converter, TFLite Micro) writes straight to fd 1/2.

C++ logging bypasses Python's sys.stdout/sys.stderr, so the only way to keep
the terminal readable, or to read TFLM's allocation record, is to swap the
file descriptors themselves for the duration of a block.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def capture_fds(*fds: int) -> Iterator[list[str]]:
    """Redirect the given descriptors to one temp file; the yielded list holds the text after the block.

    Not thread-safe: anything another thread writes meanwhile is captured too.
    """
    captured: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        for fd in fds:
            os.dup2(tmp.fileno(), fd)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", errors="replace"))


@contextmanager
def capture_stderr_fd() -> Iterator[list[str]]:
    """Capture native writes to fd 2 (TFLM prints its allocation record there)."""
    with capture_fds(2) as captured:
        yield captured
