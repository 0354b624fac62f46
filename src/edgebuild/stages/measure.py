"""Validation and benchmarks of a built artifact: host, float32 comparison, and an optional device."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebuild.artifact import TfliteArtifact, parse_artifact
from edgebuild.samples import Samples, for_artifact
from edgebuild.stages.context import TargetContext

if TYPE_CHECKING:
    from edgebuild.device import DeviceBenchOptions

SLOWER_RATIO = 1.1
SLOWER_MIN_MS = 0.02


def validate(ctx: TargetContext, artifact_path: Path, artifact: TfliteArtifact) -> dict[str, Any]:
    """Rules, accuracy, TFLite Micro; budgets are added after the C array's flash is measured."""
    from edgebuild.validation import ValidationData, validate_artifact

    data = None
    samples = ctx.validation_samples()
    if samples is not None:
        x, y, key = samples
        reference = ctx.shared.reference_outputs(x, key)
        data = ValidationData(x=x, y=y, reference=reference, output_names=tuple(ctx.shared.model.output_names))
    return validate_artifact(artifact_path, artifact, ctx.profile, data, check_budgets=False)


def benchmark(ctx: TargetContext, artifact_path: Path) -> dict[str, Any]:
    """LiteRT latency per thread count on real validation samples, plus the never-slower comparison."""
    from edgebuild.bench import benchmark_threads

    samples = ctx.validation_samples()
    x = samples[0] if samples is not None else None
    inputs = None if x is None else for_artifact(x, parse_artifact(artifact_path.read_bytes()))
    bench = ctx.profile.benchmark
    result = benchmark_threads(artifact_path, bench.threads, runs=bench.runs, warmup=bench.warmup, inputs=inputs)
    result["vs_float32"] = never_slower(ctx, result, x)
    result["scope"] = (
        "host"
        if bench.host_representative
        else "host only: LiteRT on this machine's CPU, not the target device; see the device-side numbers"
    )
    return result


def never_slower(ctx: TargetContext, result: dict[str, Any], x: Samples | None) -> dict[str, Any] | None:
    """Compare with the plain float32 model on this host (measured once per build and thread count).

    An optimized artifact that runs slower than float32 here (dynamic-range models on x86, float16 without
    a GPU) is worth a warning: the user may be shipping a slower model without knowing.
    """
    from edgebuild.bench import benchmark as run_benchmark

    shared, bench = ctx.shared, ctx.profile.benchmark
    if shared.float_blob is None:
        return None
    threads = bench.threads[0]
    key = (threads, bench.runs)
    with shared.lock:
        if key not in shared.float_latency:
            inputs = None if x is None else for_artifact(x, parse_artifact(shared.float_blob))
            shared.float_latency[key] = run_benchmark(
                shared.float_blob, threads=threads, runs=bench.runs, warmup=bench.warmup, inputs=inputs
            )["p50_ms"]
        float_p50 = shared.float_latency[key]
    p50 = result["threads"][str(threads)]["p50_ms"]
    ratio = p50 / float_p50 if float_p50 > 0 else None
    # Microsecond-scale models jitter by tens of percent between runs: warn only on a clear, absolute slow-down.
    slower = ratio is not None and ratio > SLOWER_RATIO and p50 - float_p50 > SLOWER_MIN_MS
    # Only where the device runs a CPU like this host does the comparison predict anything: an int8 model
    # on x86 may trail float32 and still be many times faster on a Cortex-M, an Edge TPU or an Ethos-U.
    applies = bench.host_representative
    return {
        "threads": threads,
        "float32_p50_ms": float_p50,
        "ratio": ratio,
        "slower": slower and applies,
        "applies": applies,
    }


def bench_device(ctx: TargetContext, artifact_path: Path, options: DeviceBenchOptions) -> dict[str, Any]:
    """Benchmark on the device (the Edge TPU-compiled model when there is one); a failure is recorded, not fatal."""
    from edgebuild.device import DeviceError

    compiled = ctx.work_dir / "model_edgetpu.tflite"
    path = compiled if compiled.exists() else artifact_path
    bench = ctx.profile.benchmark
    try:
        result = options.run(path, threads=bench.threads, runs=bench.runs, warmup=bench.warmup)
    except DeviceError as exc:
        return {
            "url": options.device,
            "error": {
                "type": type(exc).__name__,
                "exit_code": exc.exit_code,
                "message": str(exc),
            },
        }
    result["artifact"] = path.name
    return result
