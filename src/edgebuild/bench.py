"""Measure `invoke()` latency of a `.tflite` artifact in LiteRT on this host.

Only `interpreter.invoke()` is timed (`time.perf_counter_ns` right around it);
inputs are converted once up front and set outside the timed region, so the
harness adds next to nothing to the numbers (see
`benchmarks/test_harness_overhead.py`). LiteRT applies XNNPACK, its default CPU
delegate; the result says whether a delegate took part of the graph.
No TensorFlow is imported here.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.errors import DataError, UsageError
from edgebuild.runtime import LiteRTModel

RANDOM_SEED = 0
_RANDOM_POOL = 1  # distinct random samples; a single one keeps the loop free of set_tensor calls


def host_cpu() -> str:
    """The CPU model: /proc/cpuinfo's "model name" on Linux, else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def peak_rss_bytes() -> int:
    """Peak resident set size of this *process* so far (ru_maxrss), in bytes.

    It is a process-wide high-water mark: it includes the Python interpreter, every
    library imported (TensorFlow, if the pipeline loaded it) and every model loaded
    earlier, and it never goes down. Linux reports KiB, macOS bytes.
    """
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024


def _random_inputs(model: LiteRTModel, count: int, seed: int) -> list[list[np.ndarray]]:
    """Seeded random samples in each input's own dtype and shape (already quantized)."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        sample = []
        for d in model.input_details:
            shape, dtype = tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"])
            if dtype == np.bool_:
                arr = rng.random(shape) < 0.5
            elif np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                arr = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
            else:
                arr = rng.standard_normal(shape).astype(dtype)
            sample.append(arr)
        samples.append(sample)
    return samples


def _real_inputs(model: LiteRTModel, inputs: Any, limit: int) -> list[list[np.ndarray]]:
    """Real samples, quantized by the model's own parameters and split into batch-shaped pieces."""
    arrays = model.prepare_inputs(inputs)
    batch = max(int(model.input_details[0]["shape"][0]), 1)
    n = arrays[0].shape[0]
    if n < batch:
        raise DataError(
            f"Benchmark inputs hold {n} sample(s) but {model.source} runs batches of {batch}. "
            f"Pass at least {batch} samples, or none to use random data."
        )
    count = min(n // batch, limit)
    return [[np.ascontiguousarray(a[i * batch : (i + 1) * batch]) for a in arrays] for i in range(count)]


def _summary_ms(times_ns: np.ndarray) -> dict[str, float]:
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


def benchmark(
    model_path: Path | str | bytes,
    threads: int = 1,
    runs: int = 100,
    warmup: int = 10,
    inputs: np.ndarray | list[np.ndarray] | None = None,
    seed: int = RANDOM_SEED,
    keep_times: bool = False,
) -> dict[str, Any]:
    """Latency of `invoke()` in LiteRT after `warmup` untimed runs.

    `inputs`: real samples (float data, quantized with the artifact's own
    parameters; samples first), cycled over the runs; without them, one seeded
    random sample in each input's dtype is set once and reused.

    Returns a JSON-ready dict:
      p50_ms, p90_ms, p99_ms, mean_ms, std_ms, min_ms, max_ms  invoke() latency
      load_ms         interpreter construction + allocate_tensors (incl. delegate setup)
      peak_rss_bytes  the *process's* peak resident memory (ru_maxrss), not the model's alone
      threads, runs, warmup, input_source ("data" or "random"), model_bytes
      xnnpack         whether a delegate (XNNPACK) took over part of the graph
      cpu             host CPU model; runtime {"name", "version"}
      times_ms        every timed run, in order (only with keep_times=True)
    """
    if runs < 1 or warmup < 0 or threads < 1:
        raise UsageError(
            f"benchmark needs runs >= 1, warmup >= 0 and threads >= 1 (got runs={runs}, warmup={warmup}, "
            f"threads={threads}). Fix the benchmark settings."
        )
    model = LiteRTModel(model_path, num_threads=threads)
    interp = model.interpreter
    indices = [d["index"] for d in model.input_details]
    if inputs is not None:
        samples = _real_inputs(model, inputs, limit=runs + warmup)
        source = "data"
    else:
        samples = _random_inputs(model, _RANDOM_POOL, seed)
        source = "random"

    def set_sample(k: int) -> None:
        for idx, arr in zip(indices, samples[k % len(samples)], strict=True):
            interp.set_tensor(idx, arr)

    invoke = interp.invoke
    perf = time.perf_counter_ns
    set_sample(0)
    cycle = len(samples) > 1
    for i in range(warmup):
        if cycle:
            set_sample(i)
        invoke()
    times = np.empty(runs, dtype=np.int64)
    for i in range(runs):
        if cycle:
            set_sample(warmup + i)
        t0 = perf()
        invoke()
        times[i] = perf() - t0

    result: dict[str, Any] = _summary_ms(times)
    result.update(
        load_ms=model.load_time_ms,
        peak_rss_bytes=peak_rss_bytes(),
        threads=threads,
        runs=runs,
        warmup=warmup,
        input_source=source,
        model_bytes=model.size_bytes,
        xnnpack=model.uses_xnnpack,
        cpu=host_cpu(),
        runtime={"name": model.runtime_name, "version": model.runtime_version},
    )
    if keep_times:
        result["times_ms"] = (times / 1e6).tolist()
    return result


def benchmark_threads(
    model_path: Path | str,
    threads: list[int],
    runs: int = 100,
    warmup: int = 10,
    inputs: np.ndarray | list[np.ndarray] | None = None,
    seed: int = RANDOM_SEED,
) -> dict[str, Any]:
    """`benchmark` once per thread count, in the order given.

    Returns:
      {"threads": {"1": <benchmark result>, "2": ...},   keys are str(n), JSON-friendly
       "best_threads": n with the lowest p50,
       "speedup": {"2": p50(first count) / p50(n), ...}  relative to the first count listed,
       "host": {"cpu": CPU model, "machine": e.g. "x86_64", "cores": os.cpu_count()},
       "runtime": {"name", "version"}, "runs": runs, "warmup": warmup}
    Each per-thread result is complete on its own. Its peak_rss_bytes is the process
    peak up to that point, so later entries include the memory of earlier ones.
    """
    if not threads:
        raise UsageError("benchmark_threads needs at least one thread count, e.g. [1, 2].")
    per = {str(n): benchmark(model_path, n, runs, warmup, inputs, seed) for n in threads}
    base = per[str(threads[0])]["p50_ms"]
    best = min(threads, key=lambda n: per[str(n)]["p50_ms"])
    first = per[str(threads[0])]
    return {
        "threads": per,
        "best_threads": best,
        "speedup": {k: (base / v["p50_ms"] if v["p50_ms"] > 0 else None) for k, v in per.items()},
        "host": {"cpu": first["cpu"], "machine": platform.machine(), "cores": os.cpu_count()},
        "runtime": first["runtime"],
        "runs": runs,
        "warmup": warmup,
    }
