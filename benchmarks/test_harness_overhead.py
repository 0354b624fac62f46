"""The benchmark harness adds (next to) nothing to what it measures.

Same model, same process, interleaved rounds: the p50 that `edgebuild.bench.benchmark`
reports must be within 5% of a bare `invoke()` loop timed with perf_counter_ns.
Run with `.venv/bin/pytest benchmarks -p no:cacheprovider`.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgebuild import bench
from edgebuild.runtime import LiteRTModel

ROUNDS = 10
RUNS = 150
WARMUP = 20
MAX_RATIO = 1.05


def _bare_loop_ns(interp, runs: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        interp.invoke()
    times = np.empty(runs, dtype=np.int64)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        interp.invoke()
        times[i] = time.perf_counter_ns() - t0
    return times


def _bare_interpreter(model_path, sample: np.ndarray | None):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path), num_threads=1)
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    if sample is None:
        sample = np.random.default_rng(0).standard_normal(detail["shape"]).astype(detail["dtype"])
    interp.set_tensor(detail["index"], sample)
    return interp


def _compare(model_path, inputs: np.ndarray | None) -> tuple[float, float, float]:
    """(harness p50 ms, bare p50 ms, ratio) over interleaved rounds, pooled medians."""
    interp = _bare_interpreter(model_path, None if inputs is None else inputs[:1])
    bare, harness = [], []
    for _ in range(ROUNDS):
        bare.append(_bare_loop_ns(interp, RUNS, WARMUP))
        result = bench.benchmark(model_path, threads=1, runs=RUNS, warmup=WARMUP, inputs=inputs, keep_times=True)
        harness.append(np.asarray(result["times_ms"]) * 1e6)
    bare_p50 = float(np.median(np.concatenate(bare))) / 1e6
    harness_p50 = float(np.median(np.concatenate(harness))) / 1e6
    return harness_p50, bare_p50, harness_p50 / bare_p50


@pytest.mark.parametrize("input_source", ["random", "data"])
def test_harness_p50_within_5_percent_of_bare_invoke(benchmark, conv_model, conv_samples, input_source):
    inputs = conv_samples if input_source == "data" else None
    harness_p50, bare_p50, ratio = _compare(conv_model, inputs)
    assert bare_p50 > 0.2, f"model too small to show overhead: bare invoke p50 {bare_p50:.3f} ms"

    # pytest-benchmark's own view of the bare call, for the table it prints
    interp = _bare_interpreter(conv_model, None if inputs is None else inputs[:1])
    benchmark.pedantic(interp.invoke, rounds=RUNS, warmup_rounds=WARMUP)
    benchmark.extra_info.update(
        harness_p50_ms=round(harness_p50, 4), bare_p50_ms=round(bare_p50, 4), ratio=round(ratio, 4)
    )
    print(f"\n[{input_source}] harness p50 {harness_p50:.4f} ms, bare p50 {bare_p50:.4f} ms, ratio {ratio:.4f}")
    assert ratio <= MAX_RATIO, (
        f"harness p50 {harness_p50:.4f} ms vs bare invoke() p50 {bare_p50:.4f} ms: ratio {ratio:.3f} > {MAX_RATIO}"
    )


def test_model_load_time(benchmark, conv_model):
    """Loading (construct + allocate, XNNPACK setup) is timed by pytest-benchmark for reference."""
    model = benchmark.pedantic(LiteRTModel, args=(conv_model,), rounds=10, warmup_rounds=1)
    assert model.load_time_ms > 0
