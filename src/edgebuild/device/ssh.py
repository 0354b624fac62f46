"""Benchmark on an SSH device with the system `ssh` and `scp`.

The user's own OpenSSH client does the work, so `~/.ssh/config`, the agent,
known_hosts and ProxyJump all apply. Every call runs with `BatchMode=yes` (no
password or passphrase prompts: keys only), a connect timeout, and strict
host-key checking (`StrictHostKeyChecking=yes`; `accept-new` only when the
user asks with --accept-new-host-key, which records a *new* key but never
accepts a *changed* one). Host-key checking is never turned off.

Steps: (1) check that the device's Python exists and make a temporary folder
there; (2) copy the artifact and the single-file runner (`runner.py`) into it;
(3) run the runner, which prints one JSON line; (4) remove the folder, always,
also after a failure or a timeout (the runner is stopped first then).

This module runs those steps. `ssh_connection` builds the ssh/scp command lines
and explains connection failures; `ssh_result` reads the runner's result and
explains what it reports missing on the device. ssh and scp run through
`edgebuild.process.run_tool` (own process group, stopped as a whole on a timeout).
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

from edgebuild.device.errors import DeviceError, DeviceSetupError, DeviceTimeout
from edgebuild.device.ssh_connection import (
    SSHDevice,
    SSHOptions,
    brief_tail,
    classify_ssh_failure,
    needs_legacy_scp,
    scp_command,
    ssh_command,
)
from edgebuild.device.ssh_result import parse_result, runner_failure
from edgebuild.process import ToolRun, run_tool

__all__ = [
    "SSHDevice",
    "SSHOptions",
    "bench_ssh",
    "cleanup_command",
    "prepare_command",
    "run_command",
    "scp_command",
    "ssh_command",
]

RUNNER = Path(__file__).with_name("runner.py")
NO_PYTHON_MARK = "EDGEBUILD-NO-PYTHON"
CLEANED_MARK = "EDGEBUILD-CLEANED"
_NO_PYTHON_STATUS = 97
_REMOTE_DIR = re.compile(r"^/\S*edgebuild-bench\.[A-Za-z0-9]+$")


def prepare_command(device_python: str) -> str:
    """Check the Python exists, then make the temporary folder (nothing is created without Python)."""
    py = shlex.quote(device_python)
    return (
        f"if ! command -v {py} >/dev/null 2>&1; then echo {NO_PYTHON_MARK} >&2; exit {_NO_PYTHON_STATUS}; fi; "
        'mktemp -d "${TMPDIR:-/tmp}/edgebuild-bench.XXXXXX"'
    )


def run_command(
    remote_dir: str,
    device_python: str,
    model_name: str,
    threads: list[int],
    runs: int,
    warmup: int,
    deadline: float,
    edgetpu: bool,
) -> str:
    """Run the runner, then remove the folder in the same session (saves a connection).

    The runner writes its pid to runner.pid, so a separate clean-up can stop it when this session
    is cut off (timeout, lost connection); CLEANED_MARK tells the host the folder is gone.
    """
    args = [
        device_python,
        RUNNER.name,
        model_name,
        "--threads",
        ",".join(str(t) for t in threads),
        "--runs",
        str(runs),
        "--warmup",
        str(warmup),
        "--deadline",
        f"{deadline:g}",
        "--pid-file",
        "runner.pid",
    ]
    if edgetpu:
        args.append("--edgetpu")
    d = shlex.quote(remote_dir)
    return f"cd {d} || exit 96; {shlex.join(args)}; rc=$?; cd / && rm -rf {d} && echo {CLEANED_MARK}; exit $rc"


def cleanup_command(remote_dir: str, stop_runner: bool) -> str:
    d = shlex.quote(remote_dir)
    stop = f'if [ -f {d}/runner.pid ]; then kill -TERM "$(cat {d}/runner.pid)" 2>/dev/null; fi; ' if stop_runner else ""
    return f"{stop}rm -rf {d}"


# ---------------------------------------------------------------------------------------------
# the run


class _NoAnswer(Exception):
    """ssh or scp outlived its timeout (and was stopped): each step words its own message, or carries on."""


def _run(argv: list[str], timeout: float) -> ToolRun:
    """`ssh`/`scp` through the shared runner; _NoAnswer when it outlives `timeout`."""
    return run_tool(argv, timeout, argv[0], errors="replace", timeout_error=_NoAnswer())


def bench_ssh(
    artifact: Path,
    device: SSHDevice,
    options: SSHOptions,
    *,
    threads: list[int],
    runs: int,
    warmup: int,
    device_python: str,
    timeout: float,
    edgetpu: bool,
) -> dict[str, Any]:
    """Run the runner on the device; return its JSON payload (ok=True), with `cleanup` added."""
    for tool in ("ssh", "scp"):
        if shutil.which(tool) is None:
            raise DeviceSetupError(
                f"`{tool}` is not on this computer's PATH. Install the OpenSSH client "
                "(`sudo apt-get install openssh-client`, or your system's equivalent)."
            )
    control = options.connect_timeout + 30
    dest = device.destination
    try:
        proc = _run(ssh_command(device, options, prepare_command(device_python)), control)
    except _NoAnswer:
        raise DeviceTimeout(
            f"Connecting to {dest} hung for {control:g} s without an answer. Check the device and the network."
        ) from None
    if proc.returncode == _NO_PYTHON_STATUS and NO_PYTHON_MARK in proc.stderr:
        raise DeviceSetupError(
            f"{dest} has no `{device_python}` on the PATH of non-interactive SSH sessions. Install Python 3 "
            "there (e.g. `sudo apt-get install python3 python3-numpy`), or name the interpreter with "
            "--device-python /path/to/python3 (a virtual environment's bin/python3 works)."
        )
    if proc.returncode == 255:
        raise classify_ssh_failure(proc.stderr, device, options, "connecting")
    lines = [ln.strip() for ln in proc.stdout.splitlines() if "edgebuild-bench." in ln]
    if proc.returncode != 0 or not lines or not _REMOTE_DIR.match(lines[-1]):
        raise DeviceSetupError(
            f"Could not create a temporary folder on {dest} (`mktemp -d` exited {proc.returncode}: "
            f"{brief_tail(proc.stderr + proc.stdout)}). Check that $TMPDIR (or /tmp) there is writable and not full."
        )
    remote_dir = lines[-1]

    finished = cleaned = False
    failure: BaseException | None = None
    try:
        files = [artifact, RUNNER]
        model_name = artifact.name
        try:
            copy = _run(scp_command(device, options, files, remote_dir), timeout + options.connect_timeout)
            if copy.returncode != 0 and needs_legacy_scp(copy.stderr):
                # servers without the SFTP subsystem (dropbear, old embedded images) need scp's legacy protocol
                copy = _run(
                    scp_command(device, options, files, remote_dir, legacy=True), timeout + options.connect_timeout
                )
        except _NoAnswer:
            raise DeviceTimeout(
                f"Copying {artifact.name} to {dest} took longer than {timeout:g} s. Check the link speed, "
                "or raise the timeout."
            ) from None
        if copy.returncode != 0:
            if copy.returncode == 255 or "Connection" in copy.stderr:
                raise classify_ssh_failure(copy.stderr, device, options, f"copying {artifact.name}")
            raise DeviceSetupError(
                f"Copying {artifact.name} to {dest}:{remote_dir} failed: {brief_tail(copy.stderr)}. Check the free "
                "space there (`df -h /tmp` on the device)."
            )

        command = run_command(remote_dir, device_python, model_name, threads, runs, warmup, timeout, edgetpu)
        try:
            run = _run(ssh_command(device, options, command), timeout + options.connect_timeout + 2)
        except _NoAnswer:
            run = None
        payload = parse_result(run.stdout) if run is not None else None
        cleaned = run is not None and CLEANED_MARK in run.stdout
        if run is None or (payload is None and run.returncode in (142, -14)):  # SIGALRM from --deadline
            raise DeviceTimeout(
                f"The benchmark on {dest} did not finish within {timeout:g} s ({len(threads)} thread "
                f"count(s), {warmup} warm-up + {runs} timed runs each). Lower --runs, or raise the timeout; "
                "the runner was stopped."
            )
        finished = True
        if payload is None:
            if run.returncode == 255:
                raise classify_ssh_failure(run.stderr, device, options, "running the benchmark")
            raise DeviceError(
                f"The benchmark runner on {dest} ended without a result (exit status {run.returncode}): "
                f"{brief_tail(run.stderr + run.stdout)}. A crash inside the device's TensorFlow Lite runtime "
                "(exit status 134 or 139) usually means the runtime is broken or too old for this artifact."
            )
        if not payload.get("ok"):
            raise runner_failure(payload, device, device_python, artifact)
    except BaseException as exc:  # clean up, then re-raise whatever it was
        failure = exc
        raise
    finally:
        if cleaned:
            cleanup = {"removed": True, "remote_dir": remote_dir}
        else:
            cleanup = _cleanup(device, options, remote_dir, stop_runner=not finished, timeout=control)
        if failure is not None and not cleanup["removed"] and isinstance(failure, DeviceError):
            failure.args = (f"{failure.args[0]} {cleanup['message']}",)
    payload["cleanup"] = cleanup
    return payload


def _cleanup(
    device: SSHDevice, options: SSHOptions, remote_dir: str, *, stop_runner: bool, timeout: float
) -> dict[str, Any]:
    try:
        proc = _run(ssh_command(device, options, cleanup_command(remote_dir, stop_runner)), timeout)
        ok, detail = proc.returncode == 0, brief_tail(proc.stderr)
    except _NoAnswer:
        ok, detail = False, f"no answer within {timeout:g} s"
    if ok:
        return {"removed": True, "remote_dir": remote_dir}
    return {
        "removed": False,
        "remote_dir": remote_dir,
        "message": (
            f"The temporary folder {remote_dir} could not be removed from {device.destination} "
            f"({detail}); remove it with `ssh {device.destination} rm -rf {remote_dir}`."
        ),
    }
