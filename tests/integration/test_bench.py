"""edgebuild.bench on real converted models in real LiteRT."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import numpy as np
import pytest
from tflite_helpers import seeded_cnn, to_tflite

from edgebuild.bench import benchmark, benchmark_threads, host_cpu
from edgebuild.errors import DataError, UsageError

pytestmark = pytest.mark.tf  # the fixture builds the models with TensorFlow


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras as keras

    model = seeded_cnn(keras, (32, 32, 1))
    out = tmp_path_factory.mktemp("bench_models")
    float32 = out / "float32.tflite"
    float32.write_bytes(to_tflite(model))
    int8 = out / "int8.tflite"
    int8.write_bytes(to_tflite(model, "int8", samples=50))
    return {"float32": float32, "int8": int8}


def _check_sane(result: dict, runs: int, threads: int) -> None:
    latencies = [result[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms")]
    assert all(v > 0 for v in latencies)
    assert result["min_ms"] <= result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["min_ms"] <= result["mean_ms"] <= result["max_ms"]
    assert result["std_ms"] >= 0
    assert result["load_ms"] > 0
    assert result["runs"] == runs and result["threads"] == threads
    # bytes (ru_maxrss is KiB on Linux), and a process-wide high-water mark that only grows
    assert 10 * 2**20 < result["peak_rss_bytes"] <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert result["cpu"] and result["cpu"] == host_cpu()
    assert result["runtime"]["name"] in {"ai-edge-litert", "tflite-runtime"} and result["runtime"]["version"]
    json.dumps(result)  # report-ready


@pytest.mark.parametrize("kind", ["float32", "int8"])
def test_benchmark_random_inputs(models, kind):
    result = benchmark(models[kind], threads=1, runs=50, warmup=5, inputs=None, keep_times=True)
    _check_sane(result, runs=50, threads=1)
    assert result["input_source"] == "random"
    assert len(result["times_ms"]) == 50
    assert result["model_bytes"] == models[kind].stat().st_size
    assert result["xnnpack"] is True
    assert "times_ms" not in benchmark(models[kind], threads=1, runs=3, warmup=0, inputs=None)


def test_benchmark_cycles_real_samples(models):
    samples = np.random.default_rng(1).random((7, 32, 32, 1), dtype=np.float32)
    result = benchmark(models["int8"], threads=2, runs=30, warmup=3, inputs=samples)
    _check_sane(result, runs=30, threads=2)
    assert result["input_source"] == "data"


def test_benchmark_rejects_wrong_shapes_and_settings(models):
    with pytest.raises(DataError, match=r"expects data of shape \(N, 32, 32, 1\)"):
        benchmark(models["float32"], 1, 5, 0, inputs=np.zeros((4, 28, 28, 1), np.float32))
    with pytest.raises(UsageError, match="runs >= 1"):
        benchmark(models["float32"], 1, 0, 0, inputs=None)


def test_benchmark_threads_shape(models):
    result = benchmark_threads(models["float32"], [1, 2], runs=20, warmup=2)
    assert set(result["threads"]) == {"1", "2"}
    for n in (1, 2):
        _check_sane(result["threads"][str(n)], runs=20, threads=n)
    assert result["best_threads"] in (1, 2)
    assert result["speedup"]["1"] == pytest.approx(1.0)
    assert result["speedup"]["2"] > 0
    assert result["runs"] == 20 and result["warmup"] == 2
    assert result["host"]["cpu"] == host_cpu() and result["host"]["cores"] >= 1
    assert result["runtime"] == result["threads"]["1"]["runtime"]
    json.dumps(result)
