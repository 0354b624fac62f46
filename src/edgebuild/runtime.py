"""Run `.tflite` artifacts: one LiteRT adapter and the TensorFlow Lite Micro runner.

Everything here takes and returns float data, so accuracy checks can compare a
quantized artifact with its float source without knowing its I/O types:

- inputs are quantized with the artifact's *own* input scale and zero point when
  the input tensor is int8/uint8/int16 (arrays that already have the input's
  integer dtype are passed through untouched);
- integer outputs that carry quantization parameters are dequantized to float32;
  float outputs come back as float32; plain integer/bool outputs (an argmax
  index, say) keep their dtype;
- the first axis of `x` is the sample axis; results are stacked over samples.

LiteRT (`ai_edge_litert`) is the host runtime; `tflite_runtime` is accepted as
a fallback where it imports (older devices with NumPy 1). TensorFlow is never
imported here, and the runtimes are imported lazily, so `import
edgebuild.runtime` is cheap.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.native_output import capture_native
from edgebuild.errors import ArtifactError, DataError

_QUANTIZED_INPUT_DTYPES = (np.int8, np.uint8, np.int16)
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
# TFLM log lines that name an arena shortage. Other failures are shortages too when a larger arena runs
# (see _TflmModel): FULLY_CONNECTED's prepare logs only a failed check when its temporaries do not fit.
_ARENA_SHORTAGE = ("missing:", "Failed to resize buffer", "Failed to allocate", "Unable to allocate",
                   "Failed starting model allocation", "Too many buffers")

InputData = np.ndarray | Sequence[np.ndarray]


def _load_interpreter_class() -> tuple[type, str, str]:
    """(Interpreter class, distribution name, version): LiteRT first, tflite_runtime as fallback."""
    from importlib import metadata

    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert", metadata.version("ai-edge-litert")
    except ImportError as litert_exc:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]
        except Exception:  # tflite_runtime under NumPy 2 raises AttributeError on import
            raise ArtifactError(
                f"No TensorFlow Lite runtime is available: ai_edge_litert does not import ({litert_exc}) "
                "and tflite_runtime does not either. Install one with `pip install ai-edge-litert`."
            ) from None
        try:
            version = metadata.version("tflite-runtime")
        except metadata.PackageNotFoundError:
            version = "unknown"
        return Interpreter, "tflite-runtime", version


def _reference_resolver(runtime_name: str) -> Any:
    """OpResolverType.BUILTIN_REF of the loaded runtime (LiteRT, or tflite_runtime as the fallback)."""
    try:
        if runtime_name == "ai-edge-litert":
            from ai_edge_litert.interpreter import OpResolverType
        else:
            from tflite_runtime.interpreter import OpResolverType  # type: ignore[import-not-found]
    except ImportError:
        raise ArtifactError(
            f"{runtime_name} has no reference-kernel resolver (OpResolverType.BUILTIN_REF). "
            "Install ai-edge-litert (`pip install ai-edge-litert`)."
        ) from None
    return OpResolverType.BUILTIN_REF


# ---------------------------------------------------------------------------------------------
# shared data handling


@dataclass(frozen=True)
class _IOSpec:
    """What predict needs to know about one input or output tensor (runtime-neutral)."""

    name: str
    shape: tuple[int, ...]
    batch_dynamic: bool
    dtype: np.dtype
    scale: np.ndarray  # empty when not quantized
    zero_point: np.ndarray
    quantized_dimension: int

    @property
    def quantized(self) -> bool:
        return self.scale.size > 0 and bool(np.any(self.scale != 0))


def _spec_from_details(detail: dict[str, Any], name: str | None = None, signature: Any = None) -> _IOSpec:
    q = detail.get("quantization_parameters") or {}
    scale = np.asarray(q.get("scales", ()), dtype=np.float64).reshape(-1)
    zero_point = np.asarray(q.get("zero_points", ()), dtype=np.int64).reshape(-1)
    shape = tuple(int(d) for d in detail["shape"])
    sig = signature if signature is not None else detail.get("shape_signature")
    batch_dynamic = sig is not None and len(sig) > 0 and int(sig[0]) < 0
    return _IOSpec(
        name=name if name is not None else str(detail.get("name", "")),
        shape=shape,
        batch_dynamic=batch_dynamic,
        dtype=np.dtype(detail["dtype"]),
        scale=scale,
        zero_point=zero_point,
        quantized_dimension=int(q.get("quantized_dimension", 0)),
    )


def _broadcast_params(spec: _IOSpec, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point shaped to broadcast against one batch (per-tensor or per-axis)."""
    if spec.scale.size <= 1:
        zp = spec.zero_point[0] if spec.zero_point.size else 0
        return spec.scale.reshape(()), np.asarray(zp).reshape(())
    shape = [1] * ndim
    shape[spec.quantized_dimension] = spec.scale.size
    zp = spec.zero_point if spec.zero_point.size == spec.scale.size else np.zeros_like(spec.scale, np.int64)
    return spec.scale.reshape(shape), zp.reshape(shape)


def _to_input_dtype(x: np.ndarray, spec: _IOSpec) -> np.ndarray:
    """Float data → the tensor's dtype, quantizing with the tensor's own parameters."""
    if x.dtype == spec.dtype:
        return np.ascontiguousarray(x)
    if spec.dtype.type in _QUANTIZED_INPUT_DTYPES and spec.quantized:
        scale, zp = _broadcast_params(spec, x.ndim)
        info = np.iinfo(spec.dtype)
        q = np.round(x.astype(np.float64) / scale) + zp
        return np.clip(q, info.min, info.max).astype(spec.dtype)
    if np.issubdtype(spec.dtype, np.integer):
        info = np.iinfo(spec.dtype)
        return np.clip(np.round(x), info.min, info.max).astype(spec.dtype)
    return np.ascontiguousarray(x, dtype=spec.dtype)


def _from_output(y: np.ndarray, spec: _IOSpec) -> np.ndarray:
    if np.issubdtype(y.dtype, np.integer) and spec.quantized:
        scale, zp = _broadcast_params(spec, y.ndim)
        return ((y.astype(np.float64) - zp) * scale).astype(np.float32)
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32, copy=False)
    return y


def _as_input_list(x: InputData, specs: Sequence[_IOSpec], source: str) -> list[np.ndarray]:
    """Normalize `x` to one array per model input, each (N, *sample_shape), checking shapes."""
    if isinstance(x, np.ndarray) or np.isscalar(x):
        arrays = [np.asarray(x)]
    else:
        arrays = [np.asarray(a) for a in x]
    if len(arrays) != len(specs):
        raise DataError(
            f"{source} takes {len(specs)} input(s) "
            f"({', '.join(s.name or '?' for s in specs)}) but {len(arrays)} array(s) were given. "
            "Pass one array per model input, in the model's input order."
        )
    n = None
    for arr, spec in zip(arrays, specs):
        expected = ("N", *spec.shape[1:])
        if arr.ndim != len(spec.shape) or tuple(arr.shape[1:]) != tuple(spec.shape[1:]):
            raise DataError(
                f"Input '{spec.name}' of {source} expects data of shape {_fmt_shape(expected)} "
                f"(N samples first) but got {_fmt_shape(arr.shape)}. "
                "Reshape or resize the data to the model's input shape."
            )
        if n is not None and arr.shape[0] != n:
            raise DataError(
                f"The inputs for {source} disagree on the number of samples ({n} vs {arr.shape[0]}). "
                "Pass the same number of samples for every input."
            )
        n = arr.shape[0]
    return arrays


def _fmt_shape(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _stack(chunks: list[list[np.ndarray]], n_outputs: int) -> list[np.ndarray]:
    return [np.concatenate([c[i] for c in chunks], axis=0) for i in range(n_outputs)]


# ---------------------------------------------------------------------------------------------
# LiteRT


class LiteRTModel:
    """A `.tflite` artifact loaded in LiteRT (XNNPACK is applied by default on CPU).

    `model` is a path or the model's bytes. Loading failures raise ArtifactError;
    tensors are allocated here, so a model that LiteRT cannot prepare fails at load.
    `load_time_ms` is the wall time of construction + `allocate_tensors()`.
    `reference_kernels=True` runs TFLite's reference kernels (`OpResolverType.BUILTIN_REF`,
    no XNNPACK): slow, but the arithmetic TFLite Micro's reference kernels implement, so the
    two agree within a few output steps where the optimized kernels differ by tens.
    """

    def __init__(self, model: Path | str | bytes, num_threads: int = 1, reference_kernels: bool = False):
        Interpreter, self.runtime_name, self.runtime_version = _load_interpreter_class()
        self.reference_kernels = reference_kernels
        options: dict[str, Any] = {}
        if reference_kernels:
            options["experimental_op_resolver_type"] = _reference_resolver(self.runtime_name)
        if isinstance(model, (bytes, bytearray, memoryview)):
            self.source = "<model bytes>"
            content = bytes(model)
        else:
            self.source = str(model)
            try:
                content = Path(model).read_bytes()
            except OSError as exc:
                raise ArtifactError(
                    f"Cannot read {self.source}: {exc.strerror}. Check the path and its permissions."
                ) from None
        self.size_bytes = len(content)
        self.num_threads = num_threads
        try:
            with capture_native():  # LiteRT announces its XNNPACK delegate on fd 2
                start = time.perf_counter_ns()
                self.interpreter = Interpreter(model_content=content, num_threads=num_threads, **options)
                self.interpreter.allocate_tensors()
                elapsed_ns = time.perf_counter_ns() - start
        except (ValueError, RuntimeError) as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise ArtifactError(
                f"{self.source} cannot be loaded by {self.runtime_name} {self.runtime_version}: {detail}. "
                "If the file is truncated or corrupt, rebuild it or copy it again; if it uses ops this "
                "runtime does not know (custom ops, or ops from a newer converter), rebuild it with "
                "builtin ops only or upgrade the runtime."
            ) from None
        self.load_time_ms = elapsed_ns / 1e6
        self._in_specs = [_spec_from_details(d) for d in self.input_details]
        self._out_specs = [_spec_from_details(d) for d in self.output_details]

    def __repr__(self) -> str:
        kernels = ", reference_kernels=True" if self.reference_kernels else ""
        return f"LiteRTModel({self.source!r}, num_threads={self.num_threads}{kernels}, runtime={self.runtime_name})"

    @property
    def input_details(self) -> list[dict[str, Any]]:
        return self.interpreter.get_input_details()

    @property
    def output_details(self) -> list[dict[str, Any]]:
        return self.interpreter.get_output_details()

    @property
    def uses_xnnpack(self) -> bool:
        """True when a delegate (XNNPACK, LiteRT's CPU default) took over part of the graph."""
        try:
            return any(op.get("op_name") == "DELEGATE" for op in self.interpreter._get_ops_details())
        except Exception:  # private API; absent in some tflite_runtime builds
            return False

    def prepare_inputs(self, x: InputData) -> list[np.ndarray]:
        """Check shapes and convert float data to each input's dtype (quantizing where needed).

        Returns one array per input with the sample axis first.
        """
        arrays = _as_input_list(x, self._in_specs, self.source)
        return [_to_input_dtype(a, s) for a, s in zip(arrays, self._in_specs)]

    def predict(self, x: InputData, batch_size: int = 1) -> list[np.ndarray]:
        """Run float inputs through the artifact; one float32 array per output, stacked over samples.

        `x` is an array (single-input model) or one array per input, samples first.
        Inputs are quantized with the artifact's own scale/zero point when the input
        tensor is int8/uint8/int16; quantized integer outputs are dequantized.

        Batching: when the model's batch dimension is fixed, samples are fed in
        chunks of that size (one at a time for the usual batch 1; a short last chunk
        is zero-padded and the padding dropped). When it is dynamic and
        `batch_size > 1`, the inputs are resized to `batch_size` and fed in chunks.
        """
        arrays = self.prepare_inputs(x)
        n = arrays[0].shape[0]
        if n == 0:
            return [np.zeros((0, *s.shape[1:]), np.float32) for s in self._out_specs]
        fixed = self._in_specs[0].shape[0] if self._in_specs[0].shape else 1
        dynamic = all(s.batch_dynamic for s in self._in_specs)
        chunk = batch_size if (dynamic and batch_size > 1) else max(fixed, 1)
        details = self.input_details
        resized = False
        if chunk != fixed:
            for d, s in zip(details, self._in_specs):
                self.interpreter.resize_tensor_input(d["index"], [chunk, *s.shape[1:]])
            self.interpreter.allocate_tensors()
            resized = True
        try:
            chunks = []
            out_details = self.output_details
            for start in range(0, n, chunk):
                count = min(chunk, n - start)
                for d, a in zip(details, arrays):
                    part = a[start:start + count]
                    if count < chunk:
                        pad = np.zeros((chunk - count, *part.shape[1:]), part.dtype)
                        part = np.concatenate([part, pad], axis=0)
                    self.interpreter.set_tensor(d["index"], part)
                self.interpreter.invoke()
                chunks.append([
                    _from_output(self.interpreter.get_tensor(o["index"])[:count], s)
                    for o, s in zip(out_details, self._out_specs)
                ])
        finally:
            if resized:
                for d, s in zip(details, self._in_specs):
                    self.interpreter.resize_tensor_input(d["index"], list(s.shape))
                self.interpreter.allocate_tensors()
        return _stack(chunks, len(self._out_specs))


# ---------------------------------------------------------------------------------------------
# TensorFlow Lite Micro
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


def _tflm_runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as exc:
        raise ArtifactError(
            f"TensorFlow Lite Micro's Python interpreter does not import ({exc}). "
            "Install it with `pip install tflite-micro`."
        ) from None
    return runtime


def _read_model(model_path: Path | str) -> tuple[bytes, Any]:
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


def _tflm_specs(interp: Any, artifact: Any) -> tuple[list[_IOSpec], list[_IOSpec]]:
    ins = [
        _spec_from_details(interp.get_input_details(i), name=t.name, signature=t.shape_signature)
        for i, t in enumerate(artifact.inputs)
    ]
    outs = [
        _spec_from_details(interp.get_output_details(i), name=t.name, signature=t.shape_signature)
        for i, t in enumerate(artifact.outputs)
    ]
    return ins, outs


class _TflmModel:
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
        native = getattr(rt, "_runtime", None)
        try:
            wrapper = native.InterpreterWrapper(self.data, [], int(arena_size), self.resource_variables,
                                                native.PythonInterpreterConfig.kAllocationRecording, 0)
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
            return _Probe(arena_size, "short", f"{arena_size} bytes is below the {_MIN_ARENA} bytes TFLM's own "
                                               "bookkeeping takes before any tensor")
        if not hasattr(os, "fork"):  # no fork (Windows): probe in this process; a crash ends the worker
            with capture_native() as log:
                code = self._attempt(arena_size, record)
            return self._probe_result(arena_size, code, log[0])
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
        """The first probe that runs, from `start` up in ×8 steps; ArtifactError naming the cause if none does."""
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
        """True if it allocates and invokes in `arena_size` bytes; False for a shortage; ArtifactError if nothing runs."""
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
        return ArenaSearch(proven_bytes=hi, recorded_bytes=recorded, recommended_bytes=recommended, margin=margin,
                           verified=True, probes=self.probes, seconds=time.perf_counter() - start)

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
        arrays = _as_input_list(x, in_specs, self.source)
        arrays = [_to_input_dtype(a, s) for a, s in zip(arrays, in_specs)]
        n = arrays[0].shape[0]
        chunk = max(in_specs[0].shape[0] if in_specs[0].shape else 1, 1)
        chunks = []
        with capture_native() as log:
            try:
                for start in range(0, n, chunk):
                    count = min(chunk, n - start)
                    for i, a in enumerate(arrays):
                        part = a[start:start + count]
                        if count < chunk:
                            pad = np.zeros((chunk - count, *part.shape[1:]), part.dtype)
                            part = np.concatenate([part, pad], axis=0)
                        interp.set_input(np.ascontiguousarray(part), i)
                    interp.invoke()
                    chunks.append([
                        _from_output(np.array(interp.get_output(i))[:count], s) for i, s in enumerate(out_specs)
                    ])
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
        return _stack(chunks, len(out_specs))


def _round_up_16(value: int) -> int:
    return (int(value) + _ARENA_ALIGN - 1) // _ARENA_ALIGN * _ARENA_ALIGN


def recommended_arena(proven_bytes: int, margin: float) -> int:
    """The arena to declare: the proven need plus the safety margin, 16-byte aligned (the one formula;
    edgebuild.validation.recommended_arena is this)."""
    return _round_up_16(int(proven_bytes * (1.0 + margin)))


# TFLite Micro runs in a worker process. Its kernels abort the whole process on some inputs (e.g. a
# CHECK in Softmax's multiplier for degenerate scales), which must become a clear error, not a dead build;
# and its logs on fd 2 stay out of the parent, where parallel targets capture native output. Each call
# reads and parses the model once in the worker and does all its work there (a whole arena search is
# one round trip); arena probes fork from the worker, so a probe that crashes TFLM costs nothing.
_TFLM_POOL: Any = None
_TFLM_POOL_LOCK = threading.Lock()


def _tflm_call(name: str, model_path: Path | str, *args: Any) -> Any:
    global _TFLM_POOL
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    import multiprocessing

    with _TFLM_POOL_LOCK:
        if _TFLM_POOL is None:
            import atexit

            _TFLM_POOL = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_ignore_sigint)
            atexit.register(_TFLM_POOL.shutdown, wait=False, cancel_futures=True)
        pool = _TFLM_POOL
        future = pool.submit(_tflm_worker, name, str(model_path), *args)
        try:
            return future.result()
        except BrokenProcessPool:
            _TFLM_POOL = None
            raise ArtifactError(
                f"TensorFlow Lite Micro crashed (the process aborted) while running {model_path}. This happens when "
                "a kernel's internal check fails, e.g. Softmax or a requantization with an extreme scale from "
                "unrepresentative calibration data. Calibrate with real samples (--data), or check the model's "
                "quantization scales; LiteRT validation results are unaffected."
            ) from None


def _ignore_sigint() -> None:
    """Ctrl-C reaches the whole process group; the build (parent) decides how to stop, not the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


_WORKER_MODELS: dict[str, _TflmModel] = {}  # in the worker: the last few models, reused while their bytes match


def _worker_model(model_path: str) -> _TflmModel:
    cached = _WORKER_MODELS.get(model_path)
    if cached is not None:
        try:
            if Path(model_path).read_bytes() == cached.data:
                return cached
        except OSError:
            pass
    model = _TflmModel(model_path)
    _WORKER_MODELS.pop(model_path, None)
    _WORKER_MODELS[model_path] = model
    while len(_WORKER_MODELS) > 4:
        _WORKER_MODELS.pop(next(iter(_WORKER_MODELS)))
    return model


def _tflm_worker(name: str, model_path: str, *args: Any) -> Any:
    model = _worker_model(model_path)
    return {"predict": model.predict, "prove": model.search, "sufficient": model.sufficient}[name](*args)


def tflm_predict(model_path: Path | str, x: InputData, arena_size: int) -> list[np.ndarray]:
    """Run float inputs through the artifact in TFLite Micro with exactly `arena_size` bytes (see _TflmModel)."""
    return _tflm_call("predict", model_path, x, arena_size)


def prove_arena(model_path: Path | str, margin: float = 0.10) -> ArenaSearch:
    """Find the smallest arena at which TFLite Micro allocates and invokes the model, add `margin`, verify it.

    One worker round trip: exponential bracketing around TFLM's own record, then bisection in 16-byte
    steps; every probe builds a fresh interpreter with exactly that many bytes. Raises ArtifactError when
    no arena runs the model (the message names TFLM's error at a generous arena) or when the recommended
    size does not run.
    """
    return _tflm_call("prove", model_path, margin)


def measure_arena(model_path: Path | str) -> int:
    """The smallest tensor arena (bytes, multiple of 16) at which TFLite Micro runs this model (see prove_arena)."""
    return prove_arena(model_path).proven_bytes


def arena_is_sufficient(model_path: Path | str, arena_size: int) -> bool:
    """Whether TFLite Micro can allocate and invoke the model in exactly `arena_size` bytes.

    False on an arena shortage (a failure at this size that a larger arena does not have); a model TFLM
    cannot run at any size raises ArtifactError.
    """
    return _tflm_call("sufficient", model_path, arena_size)
