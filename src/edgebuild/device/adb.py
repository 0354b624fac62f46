"""Benchmark on an Android device with adb and TensorFlow Lite's `benchmark_model` tool.

Python-based runners do not exist on stock Android, so the device side is
TFLite's own C++ benchmark binary (`benchmark_model`, built per its README or
downloaded as a nightly). The flow: make a temporary folder under
/data/local/tmp, push the artifact (and `benchmark_model` when its path is a
file on this computer), run it once per thread count, parse its summary, and
remove the folder, always.

`adb_output` parses `benchmark_model`'s summary and the device's properties.
adb runs through `edgebuild.process.run_tool` (own process group, stopped as a
whole on a timeout).
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebuild.device.adb_output import (
    check_run_output,
    parse_benchmark_output,
    parse_device_info,
    thread_result,
)
from edgebuild.device.errors import (
    DeviceAuthError,
    DeviceConnectionError,
    DeviceError,
    DeviceSetupError,
    DeviceTimeout,
)
from edgebuild.errors import UsageError
from edgebuild.process import ToolRun, run_tool

__all__ = [
    "AdbDevice",
    "adb",
    "bench_adb",
    "benchmark_model_args",
    "check_run_output",
    "parse_benchmark_output",
    "parse_device_info",
    "plan_commands",
    "thread_result",
]

REMOTE_ROOT = "/data/local/tmp"
_SERIAL = re.compile(r"^[A-Za-z0-9._:\-]+$")


@dataclass(frozen=True)
class AdbDevice:
    url: str
    serial: str

    @classmethod
    def parse(cls, url: str) -> AdbDevice:
        serial = url[len("adb:") :] if url.startswith("adb:") else ""
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


def benchmark_model_args(
    benchmark_model: str, graph: str, threads: int, runs: int, warmup: int, max_secs: float
) -> list[str]:
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


def plan_commands(
    serial: str,
    artifact: Path,
    remote_dir: str,
    benchmark_model: str,
    *,
    threads: list[int],
    runs: int,
    warmup: int,
    timeout: float,
    host_binary: bool,
) -> dict[str, Any]:
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
# the run (needs a device; not exercised here)


def _run(argv: list[str], timeout: float) -> ToolRun:
    """`adb` through the shared runner; DeviceTimeout when it outlives `timeout`."""
    return run_tool(
        argv,
        timeout,
        "adb",
        errors="replace",
        timeout_error=DeviceTimeout(
            f"`{shlex.join(argv[:5])} ...` did not finish within {timeout:g} s. Lower --runs, or check the device."
        ),
    )


def _adb_failure(proc: ToolRun, device: AdbDevice, doing: str) -> DeviceError:
    text = (proc.stderr + proc.stdout).strip()
    if "unauthorized" in text:
        return DeviceAuthError(
            f"The Android device {device.serial} has not authorized this computer for USB debugging. "
            "Unlock it and accept the 'Allow USB debugging?' prompt, then try again."
        )
    if ("not found" in text and ("device" in text or "no devices" in text)) or "offline" in text:
        return DeviceConnectionError(
            f"adb cannot reach the device {device.serial} ({text.splitlines()[-1] if text else 'no output'}). "
            "Check `adb devices` lists it as 'device' (for network devices: `adb connect HOST:PORT`)."
        )
    return DeviceError(f"adb failed while {doing} on {device.serial}: {text or f'exit {proc.returncode}'}.")


def bench_adb(
    artifact: Path,
    device: AdbDevice,
    *,
    threads: list[int],
    runs: int,
    warmup: int,
    benchmark_model: str | None,
    timeout: float,
) -> dict[str, Any]:
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
    plan = plan_commands(
        device.serial,
        artifact,
        remote_dir,
        benchmark_model,
        threads=threads,
        runs=runs,
        warmup=warmup,
        timeout=timeout,
        host_binary=host_binary,
    )
    per: dict[str, dict[str, Any]] = {}
    removed = False
    try:
        for cmd in plan["push"]:
            proc = _run(cmd, timeout)
            if proc.returncode != 0:
                raise _adb_failure(proc, device, f"`{shlex.join(cmd[3:])}`")
        for n, cmd in plan["run"].items():
            proc = _run(cmd, timeout + 30)
            parsed = check_run_output(
                proc.stdout + proc.stderr,
                proc.returncode,
                device.serial,
                artifact.name,
                benchmark_model,
                device_info["machine"],
            )
            per[str(n)] = thread_result(
                parsed, threads=n, runs=runs, warmup=warmup, model_bytes=artifact.stat().st_size, cpu=device_info["cpu"]
            )
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
