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

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.native_output import capture_native
from edgebuild.errors import ArtifactError, DataError

_QUANTIZED_INPUT_DTYPES = (np.int8, np.uint8, np.int16)
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
# TFLM log lines that mean "the arena is too small" rather than "the model cannot run".
_ARENA_SHORTAGE = ("Failed to resize buffer", "Failed to allocate", "missing:")

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
    """

    def __init__(self, model: Path | str | bytes, num_threads: int = 1):
        Interpreter, self.runtime_name, self.runtime_version = _load_interpreter_class()
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
                self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
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
        return f"LiteRTModel({self.source!r}, num_threads={self.num_threads}, runtime={self.runtime_name})"

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


class _ArenaTooSmall(Exception):
    def __init__(self, log: str):
        super().__init__(log)
        self.log = log


def _tflm_interpreter(data: bytes, source: str, arena_size: int):
    """Build a TFLM interpreter; _ArenaTooSmall when the arena is short, ArtifactError otherwise."""
    runtime = _tflm_runtime()
    try:
        with capture_native() as log:
            interp = runtime.Interpreter.from_bytes(data, arena_size=int(arena_size))
    except RuntimeError:
        text = log[0] if log else ""
        if any(marker in text for marker in _ARENA_SHORTAGE):
            raise _ArenaTooSmall(text) from None
        raise ArtifactError(
            f"TensorFlow Lite Micro cannot prepare {source}: {_log_summary(text) or 'no log output'}. "
            "Check that every op is a TFLM builtin with an int8/float32 kernel (run `edgebuild validate "
            "--target mcu`), and rebuild the model for the MCU target if not."
        ) from None
    return interp


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


def _tflm_predict(model_path: Path | str, x: InputData, arena_size: int) -> list[np.ndarray]:
    """`LiteRTModel.predict` semantics in the TensorFlow Lite Micro interpreter.

    One interpreter with exactly `arena_size` bytes of tensor arena; samples are
    fed in chunks of the model's (fixed) batch size. An arena that is too small
    raises ArtifactError with the TFLM log and a hint to use `measure_arena`.
    """
    data, artifact = _read_model(model_path)
    source = str(model_path)
    try:
        interp = _tflm_interpreter(data, source, arena_size)
    except _ArenaTooSmall as short:
        raise ArtifactError(
            f"A {arena_size}-byte tensor arena is too small for {source} in TensorFlow Lite Micro "
            f"({_log_summary(short.log)}). Use measure_arena() for the exact size, or raise arena_size."
        ) from None
    in_specs, out_specs = _tflm_specs(interp, artifact)
    arrays = _as_input_list(x, in_specs, source)
    arrays = [_to_input_dtype(a, s) for a, s in zip(arrays, in_specs)]
    n = arrays[0].shape[0]
    chunk = max(in_specs[0].shape[0] if in_specs[0].shape else 1, 1)
    chunks = []
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        for i, a in enumerate(arrays):
            part = a[start:start + count]
            if count < chunk:
                part = np.concatenate([part, np.zeros((chunk - count, *part.shape[1:]), part.dtype)], axis=0)
            interp.set_input(np.ascontiguousarray(part), i)
        interp.invoke()
        chunks.append([
            _from_output(np.array(interp.get_output(i))[:count], s) for i, s in enumerate(out_specs)
        ])
    if not chunks:
        return [np.zeros((0, *s.shape[1:]), np.float32) for s in out_specs]
    return _stack(chunks, len(out_specs))


def _invoke_zeros(interp: Any, in_specs: list[_IOSpec]) -> None:
    for i, s in enumerate(in_specs):
        interp.set_input(np.zeros(s.shape, s.dtype), i)
    interp.invoke()


def _measure_arena(model_path: Path | str) -> int:
    """Exact tensor-arena bytes TFLM needs for this model, read from its own allocation record.

    Builds the interpreter with a generous arena (1 MiB, growing ×8 up to 2 GiB
    while TFLM reports a shortage), runs one inference on zeros, then parses
    `Arena allocation total N bytes` from `print_allocations()` (written to fd 2).
    The number assumes a 16-byte-aligned arena; emit the array with `alignas(16)`.
    """
    data, artifact = _read_model(model_path)
    source = str(model_path)
    size = 1 << 20
    while True:
        try:
            interp = _tflm_interpreter(data, source, size)
            break
        except _ArenaTooSmall as short:
            if size >= 1 << 31:
                raise ArtifactError(
                    f"TensorFlow Lite Micro could not fit {source} in a 2 GiB tensor arena "
                    f"({_log_summary(short.log)}). The model is far too large for a microcontroller; "
                    "shrink it (smaller input, fewer channels, int8) before targeting TFLM."
                ) from None
            size *= 8
    in_specs, _ = _tflm_specs(interp, artifact)
    with capture_native() as log:
        _invoke_zeros(interp, in_specs)
        interp.print_allocations()
    match = _ARENA_TOTAL.search(log[0])
    if match is None:
        raise ArtifactError(
            f"TensorFlow Lite Micro did not report its arena use for {source} (no 'Arena allocation "
            f"total' line in its log: {_log_summary(log[0]) or 'empty'}). This tflite-micro build may "
            "lack the recording allocator; upgrade tflite-micro."
        )
    return int(match.group(1))


def _arena_is_sufficient(model_path: Path | str, arena_size: int) -> bool:
    """True when TFLM can allocate and invoke the model in exactly `arena_size` bytes.

    False on an arena shortage; a model TFLM cannot run at all raises ArtifactError.
    TFLM's shortage messages are captured, not printed.
    """
    data, artifact = _read_model(model_path)
    source = str(model_path)
    try:
        interp = _tflm_interpreter(data, source, arena_size)
    except _ArenaTooSmall:
        return False
    in_specs, _ = _tflm_specs(interp, artifact)
    try:
        with capture_native() as log:
            _invoke_zeros(interp, in_specs)
    except RuntimeError:
        if any(marker in log[0] for marker in _ARENA_SHORTAGE):
            return False
        raise ArtifactError(
            f"TensorFlow Lite Micro failed to run {source}: {_log_summary(log[0]) or 'no log output'}. "
            "Check the model's ops against the MCU target (`edgebuild validate --target mcu`)."
        ) from None
    return True


# TFLite Micro runs in a worker process. Its kernels abort the whole process on some inputs (e.g. a
# CHECK in Softmax's multiplier for degenerate scales), which must become a clear error, not a dead build;
# and its logs on fd 2 stay out of the parent, where parallel targets capture native output.
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
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _tflm_worker(name: str, model_path: str, *args: Any) -> Any:
    return {"predict": _tflm_predict, "arena": _measure_arena, "sufficient": _arena_is_sufficient}[name](model_path, *args)


def tflm_predict(model_path: Path | str, x: InputData, arena_size: int) -> list[np.ndarray]:
    """Run float inputs through the artifact in TFLite Micro with exactly `arena_size` bytes (see _tflm_predict)."""
    return _tflm_call("predict", model_path, x, arena_size)


def measure_arena(model_path: Path | str) -> int:
    """Exact tensor-arena bytes TFLite Micro needs for this model (see _measure_arena)."""
    return _tflm_call("arena", model_path)


def arena_is_sufficient(model_path: Path | str, arena_size: int) -> bool:
    """Whether TFLite Micro can allocate and invoke the model in exactly `arena_size` bytes."""
    return _tflm_call("sufficient", model_path, arena_size)
