"""Benchmark on an Android device with adb and TensorFlow Lite's `benchmark_model` tool.

Python-based runners do not exist on stock Android, so the device side is
TFLite's own C++ benchmark binary (`benchmark_model`, built per its README or
downloaded as a nightly). The flow: make a temporary folder under
/data/local/tmp, push the artifact (and `benchmark_model` when its path is a
file on this computer), run it once per thread count, parse its summary, and
remove the folder, always.

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
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebuild.device.errors import (
    DeviceArtifactError,
    DeviceAuthError,
    DeviceConnectionError,
    DeviceError,
    DeviceSetupError,
    DeviceTimeout,
)
from edgebuild.errors import UsageError

REMOTE_ROOT = "/data/local/tmp"
_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_FIELD = re.compile(r"(\w+)=" + _NUM)
_TIMINGS = re.compile(
    r"Inference timings in us: Init: " + _NUM + r", First inference: " + _NUM
    + r", Warmup \(avg\): " + _NUM + r", Inference \(avg\): " + _NUM
)
_FOOTPRINT = re.compile(r"(Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                        r"init=" + _NUM + r" overall=" + _NUM)
_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: " + _NUM)
_SERIAL = re.compile(r"^[A-Za-z0-9._:\-]+$")
_LOAD_FAILURES = ("Failed to construct interpreter", "Failed to allocate tensors", "Failed to mmap model",
                  "Encountered unresolved custom op", "Didn't find op for builtin opcode",
                  "Model file doesn't exist", "is not a valid", "Select TensorFlow op")


@dataclass(frozen=True)
class AdbDevice:
    url: str
    serial: str

    @classmethod
    def parse(cls, url: str) -> AdbDevice:
        serial = url[len("adb:"):] if url.startswith("adb:") else ""
        serial = serial[2:] if serial.startswith("//") else serial
        if not serial or not _SERIAL.match(serial):
            raise UsageError(
                f"Bad device URL {url!r}. Use adb:SERIAL with the serial that `adb devices` lists "
                "(e.g. adb:emulator-5554 or adb:192.168.1.20:5555)."
            )
        return cls(url=url, serial=serial)


# ---------------------------------------------------------------------------------------------
# command construction (pure; unit-tested)


def adb(serial: str, *args: str) -> list[str]:
    return ["adb", "-s", serial, *args]


def benchmark_model_args(benchmark_model: str, graph: str, threads: int, runs: int, warmup: int,
                         max_secs: float) -> list[str]:
    """The device-side command line: exactly `runs` timed and `warmup` untimed runs.

    `--min_secs=0` / `--warmup_min_secs=0` stop the tool from adding runs to fill its default
    minimum durations, so the counts match the host benchmark's.
    """
    return [
        benchmark_model,
        f"--graph={graph}",
        f"--num_threads={threads}",
        f"--num_runs={runs}",
        f"--warmup_runs={warmup}",
        "--min_secs=0",
        "--warmup_min_secs=0",
        f"--max_secs={max_secs:g}",
    ]


def plan_commands(serial: str, artifact: Path, remote_dir: str, benchmark_model: str, *, threads: list[int],
                  runs: int, warmup: int, timeout: float, host_binary: bool) -> dict[str, Any]:
    """Every adb invocation of one device benchmark, in order (after `mktemp` gave `remote_dir`).

    `host_binary`: `benchmark_model` names a file on this computer, to be pushed and made executable.
    """
    graph = f"{remote_dir}/{artifact.name}"
    push = [adb(serial, "push", str(artifact), graph)]
    tool = benchmark_model
    if host_binary:
        tool = f"{remote_dir}/benchmark_model"
        push.append(adb(serial, "push", str(benchmark_model), tool))
        push.append(adb(serial, "shell", f"chmod 755 {shlex.quote(tool)}"))
    runs_cmds = {
        n: adb(serial, "shell", shlex.join(benchmark_model_args(tool, graph, n, runs, warmup, timeout)))
        for n in threads
    }
    return {
        "push": push,
        "run": runs_cmds,
        "cleanup": adb(serial, "shell", f"rm -rf {shlex.quote(remote_dir)}"),
    }


MKTEMP = f"mktemp -d {REMOTE_ROOT}/edgebuild-bench.XXXXXX"
DEVICE_INFO = (
    'echo "model=$(getprop ro.product.model)"; echo "manufacturer=$(getprop ro.product.manufacturer)"; '
    'echo "android=$(getprop ro.build.version.release)"; echo "sdk=$(getprop ro.build.version.sdk)"; '
    'echo "abi=$(getprop ro.product.cpu.abi)"; echo "soc=$(getprop ro.soc.model)"; '
    'echo "hardware=$(getprop ro.hardware)"; echo "cores=$(nproc 2>/dev/null)"'
)


# ---------------------------------------------------------------------------------------------
# parsing (pure; unit-tested on recorded-format output)


def parse_benchmark_output(text: str) -> dict[str, Any]:
    """The summary of one `benchmark_model` run, in ms and bytes.

    Returns init_ms, first_inference_ms, warmup_avg_ms, mean_ms, plus (from the last full
    `count=` line, the timed runs) count, std_ms, min_ms, max_ms, p50_ms (median, when the build
    prints it, else None), memory_init_bytes / memory_overall_bytes (the tool's footprint
    delta) and peak_memory_bytes (periodic monitoring, when enabled). Raises ValueError when
    the "Inference timings" line is missing.
    """
    timings = None
    for timings in _TIMINGS.finditer(text):
        pass
    if timings is None:
        raise ValueError("no 'Inference timings in us' line in benchmark_model's output")
    init, first, warm, infer = (float(g) for g in timings.groups())
    stats: dict[str, float] = {}
    for line in text[:timings.start()].splitlines():
        match = re.search(r"count=(\d+)\s", line + " ")
        if not match:
            continue
        fields = {k: float(v) for k, v in _FIELD.findall(line[match.start():])}
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
    for footprint in _FOOTPRINT.finditer(text):
        pass
    if footprint is not None:
        result["memory_init_bytes"] = int(float(footprint.group(2)) * 2**20)
        result["memory_overall_bytes"] = int(float(footprint.group(3)) * 2**20)
    peak = _PEAK.search(text)
    if peak is not None:
        result["peak_memory_bytes"] = int(float(peak.group(1)) * 2**20)
    return result


def thread_result(parsed: dict[str, Any], *, threads: int, runs: int, warmup: int, model_bytes: int,
                  cpu: str) -> dict[str, Any]:
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
        "memory_source": ("benchmark_model periodic peak" if parsed["peak_memory_bytes"] is not None
                          else "benchmark_model footprint delta (overall)"),
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


def check_run_output(text: str, returncode: int, serial: str, artifact_name: str, benchmark_model: str,
                     abi: str = "") -> dict[str, Any]:
    """Parse one `adb shell benchmark_model ...` run, or raise the error that says what to fix."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if any(("not found" in ln or "No such file" in ln) and "benchmark_model" in ln for ln in lines) or any(
            "Permission denied" in ln for ln in lines):
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


# ---------------------------------------------------------------------------------------------
# the run (needs a device; not exercised here)


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DeviceTimeout(
            f"`{shlex.join(argv[:5])} ...` did not finish within {timeout:g} s. Lower --runs, or check the device."
        ) from None


def _adb_failure(proc: subprocess.CompletedProcess, device: AdbDevice, doing: str) -> DeviceError:
    text = (proc.stderr + proc.stdout).strip()
    if "unauthorized" in text:
        return DeviceAuthError(
            f"The Android device {device.serial} has not authorized this computer for USB debugging. "
            "Unlock it and accept the 'Allow USB debugging?' prompt, then try again."
        )
    if "not found" in text and ("device" in text or "no devices" in text) or "offline" in text:
        return DeviceConnectionError(
            f"adb cannot reach the device {device.serial} ({text.splitlines()[-1] if text else 'no output'}). "
            "Check `adb devices` lists it as 'device' (for network devices: `adb connect HOST:PORT`)."
        )
    return DeviceError(f"adb failed while {doing} on {device.serial}: {text or f'exit {proc.returncode}'}.")


def bench_adb(artifact: Path, device: AdbDevice, *, threads: list[int], runs: int, warmup: int,
              benchmark_model: str | None, timeout: float) -> dict[str, Any]:
    if not benchmark_model:
        raise UsageError(
            "Android devices are benchmarked with TensorFlow Lite's benchmark_model tool: pass its path with "
            "--benchmark-model (a file on this computer, pushed for you, or a path on the device such as "
            "/data/local/tmp/benchmark_model)."
        )
    if shutil.which("adb") is None:
        raise DeviceSetupError("`adb` is not on this computer's PATH. Install Android SDK platform-tools.")
    host_binary = Path(benchmark_model).is_file()
    state = _run(adb(device.serial, "get-state"), 30)
    if state.returncode != 0 or state.stdout.strip() != "device":
        raise _adb_failure(state, device, "checking the device")
    info = _run(adb(device.serial, "shell", DEVICE_INFO), 30)
    device_info = parse_device_info(info.stdout) if info.returncode == 0 else parse_device_info("")
    made = _run(adb(device.serial, "shell", MKTEMP), 30)
    remote_dir = made.stdout.strip().splitlines()[-1] if made.returncode == 0 and made.stdout.strip() else ""
    if not remote_dir.startswith(f"{REMOTE_ROOT}/edgebuild-bench."):
        raise _adb_failure(made, device, f"creating a temporary folder in {REMOTE_ROOT}")
    plan = plan_commands(device.serial, artifact, remote_dir, benchmark_model, threads=threads, runs=runs,
                         warmup=warmup, timeout=timeout, host_binary=host_binary)
    per: dict[str, dict[str, Any]] = {}
    removed = False
    try:
        for cmd in plan["push"]:
            proc = _run(cmd, timeout)
            if proc.returncode != 0:
                raise _adb_failure(proc, device, f"`{shlex.join(cmd[3:])}`")
        for n, cmd in plan["run"].items():
            proc = _run(cmd, timeout + 30)
            parsed = check_run_output(proc.stdout + proc.stderr, proc.returncode, device.serial, artifact.name,
                                      benchmark_model, device_info["machine"])
            per[str(n)] = thread_result(parsed, threads=n, runs=runs, warmup=warmup,
                                        model_bytes=artifact.stat().st_size, cpu=device_info["cpu"])
    finally:
        try:
            removed = _run(plan["cleanup"], 30).returncode == 0
        except DeviceTimeout:
            removed = False
    return {
        "ok": True,
        "device": device_info,
        "runtime": {"name": "benchmark_model", "version": "unknown"},
        "results": list(per.values()),
        "cleanup": {"removed": removed, "remote_dir": remote_dir},
    }
