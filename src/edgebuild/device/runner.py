#!/usr/bin/env python3
"""edgebuild's on-device benchmark runner: one self-contained file, copied to the device and run there.

Needs only the Python standard library (3.7+), NumPy and one TensorFlow Lite
interpreter, tried in this order: ai_edge_litert, tflite_runtime,
tensorflow.lite. It never imports edgebuild and never needs TensorFlow.

It measures exactly what `edgebuild.bench.benchmark` measures on the host: one
seeded random sample in each input's dtype is set once, `warmup` untimed
`invoke()` calls, then `runs` timed ones with `time.perf_counter_ns` right
around `invoke()`. One interpreter per thread count, in the order given.

Output: one line on stdout that starts with ``EDGEBUILD-RESULT `` followed by
JSON, either {"ok": true, "device": {...}, "runtime": {...}, "results": [...]}
or {"ok": false, "error": {"kind": ..., "message": ...}, "device": {...}}.
Exit status 0 on success, 3 on a reported failure. With --deadline N the
process ends itself (SIGALRM) after N seconds, even inside a native call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from typing import Any, NoReturn

MARK = "EDGEBUILD-RESULT "
EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


def emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(payload) + "\n")
    sys.stdout.flush()


def fail(kind: str, message: str, device: dict[str, Any] | None = None, **extra: Any) -> NoReturn:
    error: dict[str, Any] = {"kind": kind, "message": message}
    error.update(extra)
    emit({"ok": False, "error": error, "device": device or device_info()})
    sys.exit(3)


def _read_first(path: str, keys: list[str]) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for key in keys:
        for line in lines:
            name, sep, value = line.partition(":") if ":" in line else line.partition("=")
            if sep and name.strip().lower() == key.lower() and value.strip():
                return value.strip().strip('"')
    return None


def device_info(numpy_version: str | None = None, runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """CPU, OS, Python (and NumPy/runtime versions when known) of this machine."""
    cpu = _read_first("/proc/cpuinfo", ["model name", "Model", "Hardware", "cpu model", "Processor"])
    os_name = _read_first("/etc/os-release", ["PRETTY_NAME"])
    return {
        "cpu": cpu or platform.processor() or platform.machine() or "unknown",
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "os": os_name or platform.platform(),
        "kernel": platform.system() + " " + platform.release(),
        "hostname": platform.node(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "numpy": numpy_version,
        "runtime": runtime,
    }


def _version(dist: str, module: Any) -> str:
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:
        return str(getattr(module, "__version__", "unknown"))


def load_runtime() -> tuple[Any, Any, dict[str, Any]]:
    """(Interpreter class, load_delegate function, {"name", "version"}) or a reported failure."""
    errors: dict[str, Any] = {}
    try:
        from ai_edge_litert import interpreter as mod

        return (
            mod.Interpreter,
            mod.load_delegate,
            {"name": "ai-edge-litert", "version": _version("ai-edge-litert", mod)},
        )
    except Exception as exc:  # ImportError, or a wheel built for another NumPy
        errors["ai_edge_litert"] = f"{type(exc).__name__}: {exc}"
    try:
        from tflite_runtime import interpreter as mod

        return (
            mod.Interpreter,
            mod.load_delegate,
            {"name": "tflite-runtime", "version": _version("tflite-runtime", mod)},
        )
    except Exception as exc:  # tflite_runtime under NumPy 2 raises AttributeError
        errors["tflite_runtime"] = f"{type(exc).__name__}: {exc}"
    try:
        import tensorflow as tf

        return (
            tf.lite.Interpreter,
            tf.lite.experimental.load_delegate,
            {"name": "tensorflow", "version": tf.__version__},
        )
    except Exception as exc:
        errors["tensorflow.lite"] = f"{type(exc).__name__}: {exc}"
    return None, None, errors


def random_sample(np: Any, details: list[dict[str, Any]], seed: int) -> list[Any]:
    """One seeded random array per input, in each input's own dtype and shape (as the host does)."""
    rng = np.random.default_rng(seed)
    sample = []
    for d in details:
        shape, dtype = tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"])
        if dtype == np.bool_:
            arr = rng.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arr = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
        else:
            arr = rng.standard_normal(shape).astype(dtype)
        sample.append(arr)
    return sample


def summary_ms(np: Any, times_ns: Any) -> dict[str, Any]:
    ms = times_ns.astype(np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std()),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
    }


def peak_rss_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # not on Linux/macOS
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024


def uses_delegate(interp: Any) -> bool | None:
    try:
        return any(op.get("op_name") == "DELEGATE" for op in interp._get_ops_details())
    except Exception:  # private API, absent in some builds
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--threads", default="1", help="comma-separated thread counts")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--edgetpu", action="store_true", help="the model is compiled for the Edge TPU")
    parser.add_argument("--deadline", type=float, default=0, help="end the process after N seconds")
    parser.add_argument("--pid-file", help="write this process's id here (lets a clean-up stop it)")
    args = parser.parse_args(argv)
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    if args.deadline > 0 and hasattr(signal, "SIGALRM"):
        signal.alarm(max(1, int(args.deadline + 0.999)))  # default action ends the process, even in C code

    try:
        import numpy as np
    except Exception as exc:
        fail("no_numpy", f"NumPy does not import ({type(exc).__name__}: {exc})")
    Interpreter, load_delegate, runtime = load_runtime()
    if Interpreter is None:
        fail("no_runtime", "no TensorFlow Lite interpreter imports", device_info(np.__version__), tried=runtime)
    device = device_info(np.__version__, runtime)

    delegate_info = None
    delegates: list[Any] = []
    if args.edgetpu:
        library = EDGETPU_LIBRARY.get(platform.system(), "libedgetpu.so.1")
        try:
            delegates = [load_delegate(library)]
        except Exception as exc:
            fail(
                "no_edgetpu",
                f"the Edge TPU delegate {library} does not load ({type(exc).__name__}: {exc})",
                device,
                library=library,
            )
        delegate_info = {"name": "edgetpu", "library": library, "loaded": True}

    with open(args.model, "rb") as f:
        model_bytes = len(f.read())
    results = []
    for n in [int(t) for t in args.threads.split(",") if t.strip()]:
        t0 = time.perf_counter_ns()
        try:
            if delegates:
                interp = Interpreter(model_path=args.model, num_threads=n, experimental_delegates=delegates)
            else:
                interp = Interpreter(model_path=args.model, num_threads=n)
            interp.allocate_tensors()
        except Exception as exc:
            fail("load_failed", f"{type(exc).__name__}: {str(exc).strip()}", device)
        load_ms = (time.perf_counter_ns() - t0) / 1e6
        details = interp.get_input_details()
        try:
            for d, arr in zip(details, random_sample(np, details, args.seed)):
                interp.set_tensor(d["index"], arr)
            invoke = interp.invoke
            perf = time.perf_counter_ns
            for _ in range(args.warmup):
                invoke()
            times = np.empty(args.runs, dtype=np.int64)
            for i in range(args.runs):
                start = perf()
                invoke()
                times[i] = perf() - start
        except Exception as exc:
            fail("invoke_failed", f"{type(exc).__name__}: {str(exc).strip()}", device)
        delegated = uses_delegate(interp)
        result = summary_ms(np, times)
        result.update(
            load_ms=load_ms,
            peak_rss_bytes=peak_rss_bytes(),
            threads=n,
            runs=args.runs,
            warmup=args.warmup,
            input_source="random",
            model_bytes=model_bytes,
            xnnpack=None if delegates else bool(delegated),
            cpu=device["cpu"],
            runtime=runtime,
        )
        if delegate_info is not None:
            result["edgetpu"] = dict(delegate_info, used=bool(delegated))
        results.append(result)
        del interp
    emit({"ok": True, "device": device, "runtime": runtime, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
