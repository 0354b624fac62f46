"""TensorFlow Lite Micro through the tflite-micro wheel's interpreter: runs, and the arena found by running.

The arena a model needs is found by running it, not read from TFLM's allocation record: the tflite-micro
interpreter's "Arena allocation total" undercounts models made of FULLY_CONNECTED layers (hello_world int8
records 1,504 bytes and needs about 2 KB), while convolutional models agree with it. Everything here runs
inside the TFLM worker process (see runtime.tflm_pool).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebuild.errors import ArtifactError
from edgebuild.native_output import capture_native
from edgebuild.runtime.io import (
    InputData,
    IOSpec,
    as_input_list,
    from_output,
    spec_from_details,
    stack_chunks,
    to_input_dtype,
)

if TYPE_CHECKING:
    from edgebuild.artifact import TfliteArtifact

_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
# TFLM log lines that name an arena shortage. Other failures are shortages too when a larger arena runs
# (see TflmModel): FULLY_CONNECTED's prepare logs only a failed check when its temporaries do not fit.
_ARENA_SHORTAGE = (
    "missing:",
    "Failed to resize buffer",
    "Failed to allocate",
    "Unable to allocate",
    "Failed starting model allocation",
    "Too many buffers",
)


#
# The arena a model needs is found by running it, not read from TFLM's allocation record: the
# tflite-micro interpreter's "Arena allocation total" undercounts models made of FULLY_CONNECTED
# layers (hello_world int8 records 1,504 bytes and needs about 2 KB), while convolutional models agree
# with it. Each probe builds an interpreter with exactly N bytes and allocates and invokes it on zeros,
# in a forked child of the TFLM worker process: at some sizes just below the need TFLM dereferences a
# failed allocation and dies (SIGSEGV) instead of reporting the shortage, and below about 464 bytes it
# always does. A failure at a size smaller than one that runs is an arena shortage, whatever TFLM
# logged (its FULLY_CONNECTED prepare reports "input != nullptr", "kernel_util.cc:516 false was not
# true" or the memory planner's "Too many buffers (max is 4)" when the arena runs out); a failure at
# every size is the model's own problem and is reported as such.

_ARENA_ALIGN = 16
_MIN_ARENA = 512  # the tflite-micro Python wrapper crashes below ~464 bytes; no model runs in less than 512
_GENEROUS_ARENA = 1 << 20
_MAX_ARENA = 1 << 31  # a shortage reported at 2 GiB: far too large for a microcontroller
_MAX_FAILING_ARENA = 1 << 26  # a failure that names no shortage is retried up to 64 MiB, then blamed on the model


@dataclass(frozen=True)
class ArenaSearch:
    """The tensor arena of one model, proven by running it in TensorFlow Lite Micro.

    `proven_bytes` is the smallest multiple of 16 at which TFLM allocates and invokes the model
    (16 bytes less does not run); `recorded_bytes` is TFLM's own "Arena allocation total" at a
    generous arena, kept for comparison only; `recommended_bytes` is the proven minimum plus
    `margin` (16-byte aligned), and `verified` says it allocated and invoked too.
    """

    proven_bytes: int
    recorded_bytes: int | None
    recommended_bytes: int
    margin: float
    verified: bool
    probes: int  # interpreters built during the search (each in its own forked process)
    seconds: float


@dataclass(frozen=True)
class _Probe:
    size: int
    status: str  # "ok", "short" (TFLM named a shortage), "prepare"/"invoke" (failed there), "crash", "error"
    log: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _tflm_runtime() -> Any:
    """tflite-micro's Python runtime module (untyped)."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as exc:
        raise ArtifactError(
            f"TensorFlow Lite Micro's Python interpreter does not import ({exc}). "
            "Install it with `pip install tflite-micro`."
        ) from None
    return runtime


def _read_model(model_path: Path | str) -> tuple[bytes, TfliteArtifact]:
    """The model bytes plus its parsed artifact (validates the flatbuffer before TFLM sees it)."""
    from edgebuild.artifact import parse_artifact

    path = Path(model_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"Cannot read {path}: {exc.strerror}. Check the path and its permissions.") from None
    return data, parse_artifact(data, source=str(path))


def _log_summary(log: str, limit: int = 4) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and "RecordingMicroAllocator" not in ln]
    return "; ".join(lines[:limit])


def _names_shortage(log: str) -> bool:
    return any(marker in log for marker in _ARENA_SHORTAGE)


def _tflm_specs(interp: Any, artifact: TfliteArtifact) -> tuple[list[IOSpec], list[IOSpec]]:
    ins = [
        spec_from_details(interp.get_input_details(i), name=t.name, signature=t.shape_signature)
        for i, t in enumerate(artifact.inputs)
    ]
    outs = [
        spec_from_details(interp.get_output_details(i), name=t.name, signature=t.shape_signature)
        for i, t in enumerate(artifact.outputs)
    ]
    return ins, outs


def count_resource_variables(tflite_bytes: bytes) -> int:
    """Distinct resource variables (VAR_HANDLE shared names), as TFLite Micro's interpreter counts them."""
    return int(_tflm_runtime().count_resource_variables(bytearray(tflite_bytes)))


class TflmModel:
    """One model in TensorFlow Lite Micro: read and parsed once, then probed or run (in the TFLM worker)."""

    def __init__(self, model_path: Path | str):
        self.data, self.artifact = _read_model(model_path)
        self.source = str(model_path)
        self.runtime = _tflm_runtime()
        # tflite-micro's Interpreter constructor unpacks the whole flatbuffer into Python objects on every
        # call just to count resource variables; count them once (none without VAR_HANDLE ops).
        uses_variables = self.artifact.subgraph_count > 1 or any(op.name == "VAR_HANDLE" for op in self.artifact.ops)
        self.resource_variables = self.runtime.count_resource_variables(self.data) if uses_variables else 0
        self.probes = 0

    # -- one interpreter ---------------------------------------------------------------------

    def interpreter(self, arena_size: int) -> Any:
        """A TFLM interpreter with exactly `arena_size` bytes; RuntimeError (TFLM's) when it cannot allocate."""
        rt = self.runtime
        native: Any = getattr(rt, "_runtime", None)  # None -> AttributeError below -> the public constructor
        try:
            wrapper = native.InterpreterWrapper(
                self.data,
                [],
                int(arena_size),
                self.resource_variables,
                native.PythonInterpreterConfig.kAllocationRecording,
                0,
            )
        except (AttributeError, TypeError):  # another tflite-micro wrapper signature: the public constructor
            return rt.Interpreter.from_bytes(self.data, arena_size=int(arena_size))
        interp = object.__new__(rt.Interpreter)
        interp._interpreter = wrapper
        return interp

    def _attempt(self, arena_size: int, record: bool) -> int:
        """0: allocated and invoked on zeros; 1: allocation (prepare) failed; 2: invoke failed."""
        try:
            interp = self.interpreter(arena_size)
        except RuntimeError:
            return 1
        try:
            for i in range(len(self.artifact.inputs)):
                detail = interp.get_input_details(i)
                interp.set_input(np.zeros(detail["shape"], detail["dtype"]), i)
            interp.invoke()
        except RuntimeError:
            return 2
        if record:
            interp.print_allocations()
        return 0

    def probe(self, arena_size: int, record: bool = False) -> _Probe:
        """Allocate and invoke with exactly `arena_size` bytes, in a forked child so a TFLM crash is a result."""
        self.probes += 1
        if arena_size < _MIN_ARENA:
            return _Probe(
                arena_size,
                "short",
                f"{arena_size} bytes is below the {_MIN_ARENA} bytes TFLM's own bookkeeping takes before any tensor",
            )
        if not hasattr(os, "fork"):  # no fork (Windows): probe in this process; a crash ends the worker
            with capture_native() as captured:
                code = self._attempt(arena_size, record)
            return self._probe_result(arena_size, code, captured[0])
        sys.stdout.flush()
        sys.stderr.flush()
        with tempfile.TemporaryFile() as sink:
            pid = os.fork()
            if pid == 0:  # child: TFLM's log goes to `sink`; never return into the worker's loop
                code = 3
                try:
                    os.dup2(sink.fileno(), 1)
                    os.dup2(sink.fileno(), 2)
                    code = self._attempt(arena_size, record)
                except BaseException:
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            sink.seek(0)
            log = sink.read().decode("utf-8", errors="replace")
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else str(signum)
            return _Probe(arena_size, "crash", f"{log.strip()} (TFLM process killed by {name})".strip())
        return self._probe_result(arena_size, os.WEXITSTATUS(status), log)

    @staticmethod
    def _probe_result(arena_size: int, code: int, log: str) -> _Probe:
        status = {0: "ok", 1: "prepare", 2: "invoke"}.get(code, "error")
        if status in ("prepare", "invoke") and _names_shortage(log):
            status = "short"
        return _Probe(arena_size, status, log)

    # -- what a failure means ----------------------------------------------------------------

    def running_probe(self, start: int, record: bool = False) -> _Probe:
        """The first probe that runs, from `start` up in x8 steps; ArtifactError naming the cause if none does."""
        size = _round_up_16(start)
        while True:
            probe = self.probe(size, record=record)
            if probe.ok:
                return probe
            limit = _MAX_ARENA if probe.status == "short" else _MAX_FAILING_ARENA
            if size >= limit:
                raise self.failure(probe)
            size = min(size * 8, limit)

    def failure(self, probe: _Probe) -> ArtifactError:
        """The error for a model that fails at every arena size tried (the last attempt in `probe`)."""
        summary = _log_summary(probe.log) or "no log output"
        if probe.status == "crash":
            return ArtifactError(
                f"TensorFlow Lite Micro crashed (the process aborted) while running {self.source} even with a "
                f"{probe.size:,}-byte arena ({summary}). This happens when a kernel's internal check fails, e.g. "
                "Softmax or a requantization with an extreme scale from unrepresentative calibration data. "
                "Calibrate with real samples (--data), or check the model's quantization scales; LiteRT "
                "validation results are unaffected."
            )
        if probe.status == "short":
            return ArtifactError(
                f"TensorFlow Lite Micro could not fit {self.source} in a {probe.size:,}-byte tensor arena "
                f"({summary}). The model is far too large for a microcontroller; shrink it (smaller input, "
                "fewer channels, int8) before targeting TFLM."
            )
        if probe.status == "invoke":
            return ArtifactError(
                f"TensorFlow Lite Micro failed to run {self.source} even with a {probe.size:,}-byte arena: "
                f"{summary}. Check the model's ops against the MCU target (`edgebuild validate --target mcu`)."
            )
        return ArtifactError(
            f"TensorFlow Lite Micro cannot prepare {self.source} even with a {probe.size:,}-byte arena: {summary}. "
            "Check that every op is a TFLM builtin with an int8/float32 kernel (run `edgebuild validate "
            "--target mcu`), and rebuild the model for the MCU target if not."
        )

    def sufficient(self, arena_size: int) -> bool:
        """True if it allocates and invokes in `arena_size` bytes; False if short; ArtifactError if nothing runs."""
        probe = self.probe(arena_size)
        if probe.ok:
            return True
        if probe.status != "short":  # failed without naming a shortage: one only if a larger arena runs
            self.running_probe(max(_GENEROUS_ARENA, 8 * arena_size))
        return False

    # -- the search ----------------------------------------------------------------------------

    def search(self, margin: float) -> ArenaSearch:
        """Smallest arena that allocates and invokes (16-byte steps), the recommended one, and its proof."""
        start = time.perf_counter()
        self.probes = 0
        generous = self.running_probe(_GENEROUS_ARENA, record=True)
        match = _ARENA_TOTAL.search(generous.log)
        recorded = int(match.group(1)) if match else None
        lo, hi = _MIN_ARENA - _ARENA_ALIGN, generous.size  # lo does not run (or is below the minimum); hi runs
        guess = _round_up_16(recorded) if recorded else None
        if guess is not None and lo < guess < hi:  # bracket the record first: most models need about that much
            if self.probe(guess).ok:
                hi, step = guess, _ARENA_ALIGN
                while hi - step > lo:
                    if not self.probe(hi - step).ok:
                        lo = hi - step
                        break
                    hi, step = hi - step, step * 2
            else:
                lo, step = guess, max(_ARENA_ALIGN, _round_up_16(guess // 8))
                while lo + step < hi:
                    if self.probe(lo + step).ok:
                        hi = lo + step
                        break
                    lo, step = lo + step, step * 2
        while hi - lo > _ARENA_ALIGN:
            mid = lo + (hi - lo) // (2 * _ARENA_ALIGN) * _ARENA_ALIGN
            if self.probe(mid).ok:
                hi = mid
            else:
                lo = mid
        recommended = recommended_arena(hi, margin)
        check = self.probe(recommended)
        if not check.ok:
            raise ArtifactError(
                f"TensorFlow Lite Micro runs {self.source} in {hi:,} bytes but not in the recommended {recommended:,} "
                f"({check.status}: {_log_summary(check.log) or 'no log output'}): its arena need is not monotonic in "
                "the arena size. Declare the proven size exactly, or report this model to the edgebuild maintainers."
            )
        return ArenaSearch(
            proven_bytes=hi,
            recorded_bytes=recorded,
            recommended_bytes=recommended,
            margin=margin,
            verified=True,
            probes=self.probes,
            seconds=time.perf_counter() - start,
        )

    # -- running data ----------------------------------------------------------------------------

    def predict(self, x: InputData, arena_size: int) -> list[np.ndarray]:
        """`LiteRTModel.predict` semantics with exactly `arena_size` bytes of tensor arena.

        The size is probed first (in a child process), so a short arena is an ArtifactError naming the
        shortage, not a crash of the worker; samples are fed in chunks of the model's (fixed) batch size.
        """
        probe = self.probe(arena_size)
        if not probe.ok:
            if probe.status != "short":  # no shortage named: blame the arena only if a larger one runs
                self.running_probe(max(_GENEROUS_ARENA, 8 * arena_size))
            raise ArtifactError(
                f"A {arena_size}-byte tensor arena is too small for {self.source} in TensorFlow Lite Micro "
                f"({_log_summary(probe.log) or probe.status}). Use measure_arena() for the exact size, or raise "
                "arena_size."
            )
        with capture_native():
            interp = self.interpreter(arena_size)
        in_specs, out_specs = _tflm_specs(interp, self.artifact)
        arrays = as_input_list(x, in_specs, self.source)
        arrays = [to_input_dtype(a, s) for a, s in zip(arrays, in_specs, strict=True)]
        n = arrays[0].shape[0]
        chunk = max(in_specs[0].shape[0] if in_specs[0].shape else 1, 1)
        chunks = []
        with capture_native() as log:
            try:
                for start in range(0, n, chunk):
                    count = min(chunk, n - start)
                    for i, a in enumerate(arrays):
                        part = a[start : start + count]
                        if count < chunk:
                            pad = np.zeros((chunk - count, *part.shape[1:]), part.dtype)
                            part = np.concatenate([part, pad], axis=0)
                        interp.set_input(np.ascontiguousarray(part), i)
                    interp.reset()  # independent samples: zero the LSTM state variable tensors
                    interp.invoke()
                    chunks.append(
                        [from_output(np.array(interp.get_output(i))[:count], s) for i, s in enumerate(out_specs)]
                    )
            except RuntimeError:
                failed = True
            else:
                failed = False
        if failed:
            raise ArtifactError(
                f"TensorFlow Lite Micro failed to run {self.source} on sample {start}: "
                f"{_log_summary(log[0]) or 'no log output'}. Check the model's ops against the MCU target "
                "(`edgebuild validate --target mcu`)."
            )
        if not chunks:
            return [np.zeros((0, *s.shape[1:]), np.float32) for s in out_specs]
        return stack_chunks(chunks, len(out_specs))


def _round_up_16(value: int) -> int:
    return (int(value) + _ARENA_ALIGN - 1) // _ARENA_ALIGN * _ARENA_ALIGN


def recommended_arena(proven_bytes: int, margin: float) -> int:
    """The arena to declare: the proven need plus the safety margin, 16-byte aligned (the one formula;
    edgebuild.validation.recommended_arena is this)."""
    return _round_up_16(int(proven_bytes * (1.0 + margin)))
