"""Read what TensorFlow Lite's `benchmark_model` prints on an Android device (and the device's
`getprop` answers) into the host benchmark's shape, or into the error that says what to fix.

`benchmark_model` prints (stdout, or logcat-style with an `INFO:` / `I tflite :`
prefix, depending on the build):

    count=50 first=... curr=... min=... max=... avg=... std=... [p5=... median=... p95=...]
    Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ..., Inference (avg): ...
    Memory footprint delta from the start of the tool (MB): init=... overall=...
      (older builds: "Peak memory footprint (MB): init=... overall=...")
    Overall peak memory footprint (MB) via periodic monitoring: ...   (with --report_peak_memory_footprint)

All times are microseconds. It reports mean, std, min, max and (newer builds)
median; it has no p90/p99, so those stay None rather than being invented.
"""

from __future__ import annotations

import re
from typing import Any

from edgebuild.device.errors import DeviceArtifactError, DeviceError, DeviceSetupError

_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_FIELD = re.compile(r"(\w+)=" + _NUM)
_TIMINGS = re.compile(
    r"Inference timings in us: Init: "
    + _NUM
    + r", First inference: "
    + _NUM
    + r", Warmup \(avg\): "
    + _NUM
    + r", Inference \(avg\): "
    + _NUM
)
_FOOTPRINT = re.compile(
    r"(Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
    r"init=" + _NUM + r" overall=" + _NUM
)
_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: " + _NUM)
_LOAD_FAILURES = (
    "Failed to construct interpreter",
    "Failed to allocate tensors",
    "Failed to mmap model",
    "Encountered unresolved custom op",
    "Didn't find op for builtin opcode",
    "Model file doesn't exist",
    "is not a valid",
    "Select TensorFlow op",
)


def parse_benchmark_output(text: str) -> dict[str, Any]:
    """The summary of one `benchmark_model` run, in ms and bytes.

    Returns init_ms, first_inference_ms, warmup_avg_ms, mean_ms, plus (from the last full
    `count=` line, the timed runs) count, std_ms, min_ms, max_ms, p50_ms (median, when the build
    prints it, else None), memory_init_bytes / memory_overall_bytes (the tool's footprint
    delta) and peak_memory_bytes (periodic monitoring, when enabled). Raises ValueError when
    the "Inference timings" line is missing.
    """
    timings = None
    for timings in _TIMINGS.finditer(text):  # noqa: B007 - the last match is the one wanted
        pass
    if timings is None:
        raise ValueError("no 'Inference timings in us' line in benchmark_model's output")
    init, first, warm, infer = (float(g) for g in timings.groups())
    stats: dict[str, float] = {}
    for line in text[: timings.start()].splitlines():
        match = re.search(r"count=(\d+)\s", line + " ")
        if not match:
            continue
        fields = {k: float(v) for k, v in _FIELD.findall(line[match.start() :])}
        if "avg" in fields:  # the timed runs' line comes last; the warm-up line may lack avg
            stats = fields
    result: dict[str, Any] = {
        "init_ms": init / 1e3,
        "first_inference_ms": first / 1e3,
        "warmup_avg_ms": warm / 1e3,
        "mean_ms": infer / 1e3,
        "count": int(stats["count"]) if "count" in stats else None,
        "std_ms": stats["std"] / 1e3 if "std" in stats else None,
        "min_ms": stats["min"] / 1e3 if "min" in stats else None,
        "max_ms": stats["max"] / 1e3 if "max" in stats else None,
        "p50_ms": stats["median"] / 1e3 if "median" in stats else None,
        "memory_init_bytes": None,
        "memory_overall_bytes": None,
        "peak_memory_bytes": None,
    }
    footprint = None
    for footprint in _FOOTPRINT.finditer(text):  # noqa: B007 - the last match is the one wanted
        pass
    if footprint is not None:
        result["memory_init_bytes"] = int(float(footprint.group(2)) * 2**20)
        result["memory_overall_bytes"] = int(float(footprint.group(3)) * 2**20)
    peak = _PEAK.search(text)
    if peak is not None:
        result["peak_memory_bytes"] = int(float(peak.group(1)) * 2**20)
    return result


def thread_result(
    parsed: dict[str, Any], *, threads: int, runs: int, warmup: int, model_bytes: int, cpu: str
) -> dict[str, Any]:
    """One parsed run in the host benchmark's per-thread shape (None where the tool has no number)."""
    peak = parsed["peak_memory_bytes"] if parsed["peak_memory_bytes"] is not None else parsed["memory_overall_bytes"]
    return {
        "p50_ms": parsed["p50_ms"],
        "p90_ms": None,
        "p99_ms": None,
        "mean_ms": parsed["mean_ms"],
        "std_ms": parsed["std_ms"],
        "min_ms": parsed["min_ms"],
        "max_ms": parsed["max_ms"],
        "load_ms": parsed["init_ms"],
        "first_inference_ms": parsed["first_inference_ms"],
        "warmup_avg_ms": parsed["warmup_avg_ms"],
        "peak_rss_bytes": peak,
        "memory_source": (
            "benchmark_model periodic peak"
            if parsed["peak_memory_bytes"] is not None
            else "benchmark_model footprint delta (overall)"
        ),
        "threads": threads,
        "runs": parsed["count"] if parsed["count"] is not None else runs,
        "warmup": warmup,
        "input_source": "random",
        "model_bytes": model_bytes,
        "xnnpack": None,
        "cpu": cpu,
        "runtime": {"name": "benchmark_model", "version": "unknown"},
    }


def parse_device_info(text: str) -> dict[str, Any]:
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    cores = values.get("cores", "").strip()
    soc = values.get("soc") or values.get("hardware") or ""
    model = " ".join(v for v in (values.get("manufacturer", ""), values.get("model", "")) if v).strip()
    return {
        "cpu": soc.strip() or values.get("abi", "unknown"),
        "machine": values.get("abi", ""),
        "cores": int(cores) if cores.isdigit() else None,
        "os": f"Android {values.get('android', '?')} (SDK {values.get('sdk', '?')})",
        "hostname": model or None,
        "python": None,
        "numpy": None,
        "runtime": {"name": "benchmark_model", "version": "unknown"},
    }


def check_run_output(
    text: str, returncode: int, serial: str, artifact_name: str, benchmark_model: str, abi: str = ""
) -> dict[str, Any]:
    """Parse one `adb shell benchmark_model ...` run, or raise the error that says what to fix."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if any(("not found" in ln or "No such file" in ln) and "benchmark_model" in ln for ln in lines) or any(
        "Permission denied" in ln for ln in lines
    ):
        line = next(ln for ln in lines if "not found" in ln or "No such file" in ln or "Permission denied" in ln)
        raise DeviceSetupError(
            f"benchmark_model does not run on {serial} ({line}). Check the path {benchmark_model}, that it is "
            f"executable, and that it is built for the device's ABI ({abi or 'see getprop ro.product.cpu.abi'})."
        )
    try:
        return parse_benchmark_output(text)
    except ValueError:
        pass
    failures = [ln for ln in lines if any(marker in ln for marker in _LOAD_FAILURES)]
    if failures:
        raise DeviceArtifactError(
            f"benchmark_model on {serial} cannot load {artifact_name}: {' '.join(failures[:2])} Use a "
            "benchmark_model build as new as the converter (or one with the needed delegates/ops), or rebuild "
            "the artifact for the target."
        )
    raise DeviceError(
        f"benchmark_model on {serial} printed no summary (exit status {returncode}): "
        f"{' | '.join(lines[-4:]) or 'no output'}."
    )
