"""Benchmark an artifact on the device it is built for, and bring the numbers back.

    from edgebuild.device import bench_on_device
    result = bench_on_device(Path("model.tflite"), "ssh://pi@raspberrypi.local", threads=[1, 4], runs=100, warmup=10)

Device URLs: `ssh://[user@]host[:port]` (a Linux board with Python 3, NumPy and a
TFLite interpreter; see `ssh.py`), `adb:SERIAL` (Android, with TFLite's
`benchmark_model`; see `adb.py`) and `qemu:BOARD` (a TFLite Micro firmware on an
emulated Cortex-M, instructions per inference instead of milliseconds; see
`qemu.py`). The ssh/adb result mirrors
`edgebuild.bench.benchmark_threads`: per-thread results under "threads" with
the host benchmark's fields, "best_threads", "speedup", plus "device" (CPU,
machine, cores, OS, Python, NumPy, runtime, URL) in place of "host".
No TensorFlow is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebuild.artifact import TFLITE_IDENTIFIER
from edgebuild.device.errors import (
    DeviceArtifactError,
    DeviceAuthError,
    DeviceConnectionError,
    DeviceError,
    DeviceHostKeyError,
    DeviceSetupError,
    DeviceTimeout,
)
from edgebuild.errors import ArtifactError, UsageError

__all__ = [
    "DeviceArtifactError",
    "DeviceAuthError",
    "DeviceBenchOptions",
    "DeviceConnectionError",
    "DeviceError",
    "DeviceHostKeyError",
    "DeviceSetupError",
    "DeviceTimeout",
    "bench_on_device",
    "is_edgetpu_artifact",
]

_EDGETPU_OP = b"edgetpu-custom-op"


def is_edgetpu_artifact(path: Path) -> bool:
    """True for `*_edgetpu.tflite` files and for any model holding edgetpu_compiler's custom op."""
    if path.name.endswith("_edgetpu.tflite"):
        return True
    try:
        return _EDGETPU_OP in path.read_bytes()
    except OSError:
        return False


def _check_inputs(
    artifact: Path,
    threads: list[int],
    runs: int,
    warmup: int,
    timeout: float,
    connect_timeout: float,
    identity: Path | None,
) -> None:
    if not threads or any(int(t) < 1 for t in threads) or runs < 1 or warmup < 0:
        raise UsageError(
            f"A device benchmark needs thread counts >= 1, runs >= 1 and warmup >= 0 (got threads={threads}, "
            f"runs={runs}, warmup={warmup}). Fix the benchmark settings."
        )
    if timeout <= 0 or connect_timeout <= 0:
        raise UsageError(f"Timeouts must be positive (got timeout={timeout}, connect_timeout={connect_timeout}).")
    try:
        head = artifact.open("rb").read(8)
    except OSError as exc:
        raise ArtifactError(f"Cannot read {artifact}: {exc.strerror}. Check the path and its permissions.") from None
    if head[4:8] != TFLITE_IDENTIFIER:  # the artifact reader's check, on the first 8 bytes only
        raise ArtifactError(
            f"{artifact} is not a TensorFlow Lite flatbuffer (no 'TFL3' identifier). Pass a .tflite file."
        )
    if identity is not None and not Path(identity).expanduser().is_file():
        raise UsageError(f"The SSH identity file {identity} does not exist. Pass the private key's path to --identity.")


def _shape(
    payload: dict[str, Any], device_url: str, transport: str, threads: list[int], runs: int, warmup: int
) -> dict[str, Any]:
    """The runner's payload in `benchmark_threads`' shape."""
    per = {str(r["threads"]): r for r in payload["results"]}
    metric = "p50_ms" if all(r.get("p50_ms") is not None for r in per.values()) else "mean_ms"
    base = per[str(threads[0])][metric]
    best = min(threads, key=lambda n: per[str(n)][metric])
    device = dict(payload["device"], url=device_url, transport=transport)
    result: dict[str, Any] = {
        "threads": per,
        "best_threads": best,
        "speedup": {k: (base / v[metric] if v[metric] else None) for k, v in per.items()},
        "speedup_metric": metric,
        "device": device,
        "runtime": payload["runtime"],
        "runs": runs,
        "warmup": warmup,
        "cleanup": payload.get("cleanup"),
    }
    edgetpu = per[str(threads[0])].get("edgetpu")
    if edgetpu is not None:
        result["edgetpu"] = {
            "requested": True,
            "used": all(r["edgetpu"]["used"] for r in per.values()),
            "library": edgetpu.get("library"),
        }
    return result


def bench_on_device(
    artifact: Path,
    device: str,
    *,
    threads: list[int],
    runs: int,
    warmup: int,
    identity: Path | None = None,
    accept_new_host_key: bool = False,
    known_hosts: Path | None = None,
    connect_timeout: float = 10,
    device_python: str = "python3",
    benchmark_model: str | None = None,
    timeout: float = 300,
) -> dict[str, Any]:
    """Benchmark `artifact` on `device` (`ssh://[user@]host[:port]` or `adb:SERIAL`).

    SSH: `identity` is passed as `ssh -i`; `known_hosts` replaces the user's known_hosts file
    (`UserKnownHostsFile`, for tests and CI); `accept_new_host_key` records an unknown host key
    (never a changed one); `device_python` is the interpreter on the device (a path to a virtual
    environment's python3 works). `timeout` bounds the copy and the run on the device (seconds);
    `connect_timeout` each connection.
    adb: `benchmark_model` is the path of TFLite's benchmark tool, on this computer (pushed) or
    on the device.

    Returns `benchmark_threads`' shape: {"threads": {"1": {p50_ms, p90_ms, p99_ms, mean_ms, std_ms,
    min_ms, max_ms, load_ms, peak_rss_bytes, threads, runs, warmup, input_source, model_bytes,
    xnnpack, cpu, runtime[, edgetpu]}}, "best_threads", "speedup", "speedup_metric", "device": {cpu,
    machine, cores, os, kernel, hostname, python, numpy, runtime, url, transport}, "runtime",
    "runs", "warmup", "cleanup": {"removed", "remote_dir"}[, "edgetpu": {"requested", "used",
    "library"}]}. peak_rss_bytes is the device runner process's high-water mark (Python, NumPy, the
    runtime and the model; no TensorFlow), so it is smaller than the host figure.

    Raises UsageError (bad URL or settings), ArtifactError (not a .tflite file), and DeviceError
    subclasses (ExternalToolError, exit code 10) for connection, authentication, host key,
    missing Python/NumPy/runtime/Edge TPU runtime and timeouts; DeviceArtifactError (exit code 9)
    when the device runtime cannot load or run the artifact. The device's temporary folder is
    removed in every case.
    """
    artifact = Path(artifact)
    threads = [int(t) for t in threads]
    _check_inputs(artifact, threads, runs, warmup, timeout, connect_timeout, identity)
    if device.startswith("qemu:"):
        from edgebuild.device.qemu import bench_qemu

        return bench_qemu(artifact, device, runs)
    if device.startswith("ssh://"):
        from edgebuild.device.ssh import SSHDevice, SSHOptions, bench_ssh

        target = SSHDevice.parse(device)
        options = SSHOptions(
            identity=Path(identity).expanduser() if identity is not None else None,
            accept_new_host_key=accept_new_host_key,
            known_hosts=Path(known_hosts) if known_hosts is not None else None,
            connect_timeout=connect_timeout,
        )
        payload = bench_ssh(
            artifact,
            target,
            options,
            threads=threads,
            runs=runs,
            warmup=warmup,
            device_python=device_python,
            timeout=timeout,
            edgetpu=is_edgetpu_artifact(artifact),
        )
        return _shape(payload, device, "ssh", threads, runs, warmup)
    if device.startswith("adb:"):
        from edgebuild.device.adb import AdbDevice, bench_adb

        if is_edgetpu_artifact(artifact):
            raise UsageError(
                f"{artifact.name} is compiled for the Edge TPU, which Android phones do not have. Benchmark the "
                "CPU artifact on Android, and the Edge TPU artifact on a Coral board over ssh://."
            )
        payload = bench_adb(
            artifact,
            AdbDevice.parse(device),
            threads=threads,
            runs=runs,
            warmup=warmup,
            benchmark_model=benchmark_model,
            timeout=timeout,
        )
        return _shape(payload, device, "adb", threads, runs, warmup)
    raise UsageError(
        f"Unknown device {device!r}. Use ssh://user@host[:port] (e.g. ssh://pi@raspberrypi.local), adb:SERIAL "
        "(e.g. adb:emulator-5554) or qemu:BOARD (e.g. qemu:mps2-an386, a TFLite Micro firmware on QEMU)."
    )


@dataclass(frozen=True)
class DeviceBenchOptions:
    """Where and how to benchmark on a device, carried as one value (e.g. `build --bench-device`).

    `run(artifact, threads, runs, warmup)` is `bench_on_device` with these settings.
    """

    device: str
    identity: Path | None = None
    accept_new_host_key: bool = False
    known_hosts: Path | None = None
    connect_timeout: float = 10
    device_python: str = "python3"
    benchmark_model: str | None = None
    timeout: float = 300

    def run(self, artifact: Path, *, threads: list[int], runs: int, warmup: int) -> dict[str, Any]:
        return bench_on_device(
            artifact,
            self.device,
            threads=threads,
            runs=runs,
            warmup=warmup,
            identity=self.identity,
            accept_new_host_key=self.accept_new_host_key,
            known_hosts=self.known_hosts,
            connect_timeout=self.connect_timeout,
            device_python=self.device_python,
            benchmark_model=self.benchmark_model,
            timeout=self.timeout,
        )
