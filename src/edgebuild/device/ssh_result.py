"""What the device-side runner (`runner.py`) reports: its JSON result line, and the failures it
names (no NumPy, no TFLite interpreter, no Edge TPU runtime, an artifact it cannot load or run),
each turned into an error that says what to install or change on the device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgebuild.device.errors import DeviceArtifactError, DeviceError, DeviceSetupError
from edgebuild.device.ssh_connection import SSHDevice

RESULT_MARK = "EDGEBUILD-RESULT "


def parse_result(stdout: str) -> dict[str, Any] | None:
    """The runner's JSON payload (its last result line), or None when it printed none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            try:
                payload: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
                return payload
            except json.JSONDecodeError:
                return None
    return None


def runner_failure(payload: dict[str, Any], device: SSHDevice, device_python: str, artifact: Path) -> DeviceError:
    """The error for a payload with ok=False, worded by the failure kind the runner names."""
    error = payload.get("error") or {}
    kind, message = error.get("kind"), str(error.get("message", "")).rstrip(".")
    info = payload.get("device") or {}
    dest = device.destination
    py = f"{device_python} (Python {info.get('python', '?')})"
    pip = f"{device_python} -m pip install"
    if kind == "no_numpy":
        return DeviceSetupError(
            f"NumPy is missing on {dest}: {py} says {message}. Install it there for that Python "
            f"(`{pip} numpy`, or `sudo apt-get install python3-numpy`), or point --device-python at a Python "
            "that has it."
        )
    if kind == "no_runtime":
        tried = error.get("tried") or {}
        detail = "; ".join(f"{k}: {v}" for k, v in tried.items())
        numpy_version = str(info.get("numpy") or "?")
        numpy2 = numpy_version.split(".")[0].isdigit() and int(numpy_version.split(".")[0]) >= 2
        return DeviceSetupError(
            f"No TensorFlow Lite interpreter on {dest}: {py} with NumPy {numpy_version} imports none of "
            f"ai_edge_litert, tflite_runtime or tensorflow.lite ({detail}). Install one there for that Python: "
            f"`{pip} ai-edge-litert` (LiteRT; Linux x86-64 and aarch64), or `{pip} tflite-runtime` on older "
            "systems with NumPy 1"
            + (" (it does not load under this NumPy 2)" if numpy2 else "")
            + ". The full TensorFlow is not needed."
        )
    if kind == "no_edgetpu":
        return DeviceSetupError(
            f"{artifact.name} is compiled for the Edge TPU, but on {dest} {message}. Install the Edge TPU "
            "runtime on the device (`sudo apt-get install libedgetpu1-std` from Coral's package repository) "
            "and connect the Edge TPU. edgebuild does not time a CPU fallback in its place; to measure the "
            "CPU, bench the artifact from before edgetpu_compiler."
        )
    runtime = info.get("runtime") or {}
    rt = f"{runtime.get('name', 'runtime')} {runtime.get('version', '')}".strip()
    if kind in ("load_failed", "invoke_failed"):
        verb = "load" if kind == "load_failed" else "run"
        return DeviceArtifactError(
            f"The device's {rt} (on {dest}) cannot {verb} {artifact.name}: {message}. The artifact may use ops, "
            "op versions or custom/Select-TF ops that runtime lacks: upgrade it on the device "
            f"(`{pip} -U ai-edge-litert`), or rebuild the artifact for the target (`edgebuild validate`)."
        )
    return DeviceError(f"The benchmark runner on {dest} failed ({kind}): {message}.")
