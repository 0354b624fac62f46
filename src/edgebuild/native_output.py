"""Capture what native code (TensorFlow, the converter, TFLite Micro) writes straight to fd 1/2.

C++ logging bypasses Python's sys.stdout/sys.stderr, so the only way to keep
the terminal readable, or to read TFLM's allocation record, is to swap the
file descriptors themselves. Targets build in parallel threads, so captures
nest: the first one redirects, the last one restores, and each caller gets
the text written during its own window (which may include other threads'
native output; callers parse for their own lines). Python-level progress
output keeps reaching the terminal through `terminal_stream()`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Protocol

_lock = threading.Lock()
_depth = 0
_sink: IO[bytes] | None = None
_saved: dict[int, int] = {}


@contextmanager
def capture_native() -> Iterator[list[str]]:
    """Redirect fds 1 and 2 while the block runs; the yielded list holds the text written meanwhile.

    Nested and concurrent use is safe: all active captures share one redirection of both descriptors.
    """
    global _depth, _sink
    with _lock:
        sys.stdout.flush()
        sys.stderr.flush()
        if _depth == 0:
            _sink = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - open until the last capture ends
            for fd in (1, 2):
                _saved[fd] = os.dup(fd)
                os.dup2(_sink.fileno(), fd)
        sink = _sink
        assert sink is not None  # made by the first capture, closed by the last
        _depth += 1
        start = os.lseek(sink.fileno(), 0, os.SEEK_END)
    captured: list[str] = []
    try:
        yield captured
    finally:
        with _lock:
            sys.stdout.flush()
            sys.stderr.flush()
            end = os.lseek(sink.fileno(), 0, os.SEEK_END)
            captured.append(os.pread(sink.fileno(), end - start, start).decode("utf-8", errors="replace"))
            _depth -= 1
            if _depth == 0:
                for fd, copy in _saved.items():
                    os.dup2(copy, fd)
                    os.close(copy)
                _saved.clear()
                sink.close()
                _sink = None


class _TextSink(Protocol):
    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class TerminalStream:
    """A file-like object for progress output that reaches the real terminal even during a capture.

    When sys.stdout/sys.stderr were replaced (pytest's capsys, a caller's redirect), writes go to the
    replacement, as usual; otherwise to a copy of the original descriptor saved by an active capture.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def _target(self) -> _TextSink:
        stream = sys.stdout if self.fd == 1 else sys.stderr
        original = sys.__stdout__ if self.fd == 1 else sys.__stderr__
        with _lock:
            saved = _saved.get(self.fd)
            if stream is original and saved is not None:
                return _FdWriter(saved, original)
        return stream

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return (sys.stdout if self.fd == 1 else sys.stderr).isatty()

    def fileno(self) -> int:
        return self.fd


class _FdWriter:
    def __init__(self, fd: int, fallback: IO[str]) -> None:
        self.fd = fd
        self.fallback = fallback

    def write(self, text: str) -> int:
        try:
            os.write(self.fd, text.encode())
        except OSError:  # the capture ended (and closed the copy) meanwhile
            self.fallback.write(text)
        return len(text)

    def flush(self) -> None:
        pass
