"""TensorFlow Lite Micro in a worker process, and the public calls that use it.

Its kernels abort the whole process on some inputs (e.g. a CHECK in Softmax's multiplier for degenerate
scales), which must become a clear error, not a dead build; and its logs on fd 2 stay out of the parent,
where parallel targets capture native output.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.errors import ArtifactError
from edgebuild.runtime.io import InputData
from edgebuild.runtime.tflm import ArenaSearch, TflmModel

# TFLite Micro runs in a worker process. Its kernels abort the whole process on some inputs (e.g. a
# CHECK in Softmax's multiplier for degenerate scales), which must become a clear error, not a dead build;
# and its logs on fd 2 stay out of the parent, where parallel targets capture native output. Each call
# reads and parses the model once in the worker and does all its work there (a whole arena search is
# one round trip); arena probes fork from the worker, so a probe that crashes TFLM costs nothing.
_TFLM_POOL: Any = None
_TFLM_POOL_LOCK = threading.Lock()


def _tflm_call(name: str, model_path: Path | str, *args: Any) -> Any:
    global _TFLM_POOL
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with _TFLM_POOL_LOCK:
        if _TFLM_POOL is None:
            import atexit

            _TFLM_POOL = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
            )
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


_WORKER_MODELS: dict[str, TflmModel] = {}  # in the worker: the last few models, reused while their bytes match


def _worker_model(model_path: str) -> TflmModel:
    cached = _WORKER_MODELS.get(model_path)
    if cached is not None:
        try:
            if Path(model_path).read_bytes() == cached.data:
                return cached
        except OSError:
            pass
    model = TflmModel(model_path)
    _WORKER_MODELS.pop(model_path, None)
    _WORKER_MODELS[model_path] = model
    while len(_WORKER_MODELS) > 4:
        _WORKER_MODELS.pop(next(iter(_WORKER_MODELS)))
    return model


def _tflm_worker(name: str, model_path: str, *args: Any) -> Any:
    model = _worker_model(model_path)
    handlers: dict[str, Callable[..., Any]] = {
        "predict": model.predict,
        "prove": model.search,
        "sufficient": model.sufficient,
    }
    return handlers[name](*args)


def tflm_predict(model_path: Path | str, x: InputData, arena_size: int) -> list[np.ndarray]:
    """Run float inputs through the artifact in TFLite Micro with exactly `arena_size` bytes (see TflmModel)."""
    outputs: list[np.ndarray] = _tflm_call("predict", model_path, x, arena_size)
    return outputs


def prove_arena(model_path: Path | str, margin: float = 0.10) -> ArenaSearch:
    """Find the smallest arena at which TFLite Micro allocates and invokes the model, add `margin`, verify it.

    One worker round trip: exponential bracketing around TFLM's own record, then bisection in 16-byte
    steps; every probe builds a fresh interpreter with exactly that many bytes. Raises ArtifactError when
    no arena runs the model (the message names TFLM's error at a generous arena) or when the recommended
    size does not run.
    """
    search: ArenaSearch = _tflm_call("prove", model_path, margin)
    return search


def measure_arena(model_path: Path | str) -> int:
    """The smallest tensor arena (bytes, multiple of 16) at which TFLite Micro runs this model (see prove_arena)."""
    return prove_arena(model_path).proven_bytes


def arena_is_sufficient(model_path: Path | str, arena_size: int) -> bool:
    """Whether TFLite Micro can allocate and invoke the model in exactly `arena_size` bytes.

    False on an arena shortage (a failure at this size that a larger arena does not have); a model TFLM
    cannot run at any size raises ArtifactError.
    """
    sufficient: bool = _tflm_call("sufficient", model_path, arena_size)
    return sufficient
