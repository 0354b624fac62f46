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
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edgebuild.device.errors import (
    DeviceArtifactError,
    DeviceAuthError,
    DeviceConnectionError,
    DeviceError,
    DeviceHostKeyError,
    DeviceSetupError,
    DeviceTimeout,
)
from edgebuild.errors import UsageError

RUNNER = Path(__file__).with_name("runner.py")
RESULT_MARK = "EDGEBUILD-RESULT "
NO_PYTHON_MARK = "EDGEBUILD-NO-PYTHON"
CLEANED_MARK = "EDGEBUILD-CLEANED"
_NO_PYTHON_STATUS = 97
_REMOTE_DIR = re.compile(r"^/\S*edgebuild-bench\.[A-Za-z0-9]+$")


@dataclass(frozen=True)
class SSHDevice:
    """`ssh://[user@]host[:port]`: what ssh is told to connect to."""

    url: str
    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, url: str) -> SSHDevice:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"Bad device URL {url!r}: {exc}. Use ssh://user@host[:port].") from None
        host = parts.hostname
        if parts.scheme != "ssh" or not host or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise UsageError(
                f"Bad device URL {url!r}. Use ssh://user@host[:port] (e.g. ssh://pi@raspberrypi.local) "
                "or adb:SERIAL (e.g. adb:emulator-5554)."
            )
        if parts.password is not None:
            raise UsageError(
                f"The device URL {url!r} holds a password. edgebuild never passes passwords to ssh: "
                "use a key (--identity PATH, or ssh-agent) and drop the password from the URL."
            )
        if host.startswith("-") or (parts.username or "").startswith("-"):
            raise UsageError(f"Bad device URL {url!r}: user and host must not start with '-'.")
        return cls(url=url, host=host, user=parts.username or None, port=port)

    @property
    def destination(self) -> str:
        """`user@host` for ssh (port goes in -p)."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def scp_host(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" if self.user else host

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this host: `host`, or `[host]:port` off port 22."""
        return self.host if self.port in (None, 22) else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class SSHOptions:
    identity: Path | None = None
    accept_new_host_key: bool = False
    known_hosts: Path | None = None
    connect_timeout: float = 10

    def common(self) -> list[str]:
        """Options shared by ssh and scp (port excluded: -p vs -P)."""
        args = [
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={max(1, math.ceil(self.connect_timeout))}",
            "-o", "StrictHostKeyChecking=" + ("accept-new" if self.accept_new_host_key else "yes"),
        ]
        if self.known_hosts is not None:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.identity is not None:
            args += ["-i", str(self.identity)]
        return args


def ssh_command(device: SSHDevice, options: SSHOptions, remote: str) -> list[str]:
    """argv for `ssh ... DEST REMOTE_COMMAND` (the command runs in the user's login shell)."""
    port = ["-p", str(device.port)] if device.port else []
    return ["ssh", *options.common(), *port, "--", device.destination, remote]


def scp_command(device: SSHDevice, options: SSHOptions, files: list[Path], remote_dir: str,
                legacy: bool = False) -> list[str]:
    """argv for copying `files` into `remote_dir` (SFTP protocol; `legacy` adds -O for old servers)."""
    port = ["-P", str(device.port)] if device.port else []
    target = shlex.quote(remote_dir) if legacy else remote_dir  # -O: the remote shell expands the path
    return ["scp", "-q", *(["-O"] if legacy else []), *options.common(), *port, "--",
            *[str(f) for f in files], f"{device.scp_host}:{target}/"]


def prepare_command(device_python: str) -> str:
    """Check the Python exists, then make the temporary folder (nothing is created without Python)."""
    py = shlex.quote(device_python)
    return (
        f"if ! command -v {py} >/dev/null 2>&1; then echo {NO_PYTHON_MARK} >&2; exit {_NO_PYTHON_STATUS}; fi; "
        'mktemp -d "${TMPDIR:-/tmp}/edgebuild-bench.XXXXXX"'
    )


def run_command(remote_dir: str, device_python: str, model_name: str, threads: list[int], runs: int,
                warmup: int, deadline: float, edgetpu: bool) -> str:
    """Run the runner, then remove the folder in the same session (saves a connection).

    The runner writes its pid to runner.pid, so a separate clean-up can stop it when this session
    is cut off (timeout, lost connection); CLEANED_MARK tells the host the folder is gone.
    """
    args = [device_python, RUNNER.name, model_name, "--threads", ",".join(str(t) for t in threads),
            "--runs", str(runs), "--warmup", str(warmup), "--deadline", f"{deadline:g}", "--pid-file", "runner.pid"]
    if edgetpu:
        args.append("--edgetpu")
    d = shlex.quote(remote_dir)
    return (f"cd {d} || exit 96; {shlex.join(args)}; rc=$?; "
            f"cd / && rm -rf {d} && echo {CLEANED_MARK}; exit $rc")


def cleanup_command(remote_dir: str, stop_runner: bool) -> str:
    d = shlex.quote(remote_dir)
    stop = (f'if [ -f {d}/runner.pid ]; then kill -TERM "$(cat {d}/runner.pid)" 2>/dev/null; fi; '
            if stop_runner else "")
    return f"{stop}rm -rf {d}"


# ---------------------------------------------------------------------------------------------
# failures


def _first_line(stderr: str, *needles: str) -> str:
    for line in stderr.splitlines():
        if any(n.lower() in line.lower() for n in needles):
            return line.strip()
    return ""


def _tail(text: str, lines: int = 4) -> str:
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:]) or "no output"


def classify_ssh_failure(stderr: str, device: SSHDevice, options: SSHOptions, doing: str) -> DeviceError:
    """Turn ssh/scp's stderr (exit status 255) into one actionable paragraph."""
    dest = device.destination
    port = device.port or 22
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "Host key for" in stderr and "has changed" in stderr:
        where = f" in {options.known_hosts}" if options.known_hosts else ""
        return DeviceHostKeyError(
            f"The SSH host key of {device.known_hosts_name} has CHANGED since it was recorded{where}: the "
            "device was reinstalled, or someone is intercepting the connection. edgebuild will not connect, "
            "and --accept-new-host-key does not override a changed key. If you expect the change, remove the "
            f"old key with `ssh-keygen -R '{device.known_hosts_name}'` and connect again."
        )
    if "Host key verification failed" in stderr or "host key is known" in stderr:
        line = _first_line(stderr, "host key is known") or "Host key verification failed"
        keyscan = f"ssh-keyscan -p {port} {device.host}" if port != 22 else f"ssh-keyscan {device.host}"
        where = str(options.known_hosts) if options.known_hosts else "~/.ssh/known_hosts"
        return DeviceHostKeyError(
            f"The SSH host key of {device.known_hosts_name} is not in your known hosts ({line.rstrip('.')}), "
            "and edgebuild checks host keys strictly. If this is the device you expect, pass "
            "--accept-new-host-key to trust and record its key on first use, or add the key yourself: "
            f"`{keyscan} >> {where}` (compare its fingerprint with `ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key.pub` run on the device)."
        )
    if "Permission denied" in stderr or "Too many authentication failures" in stderr:
        line = _first_line(stderr, "Permission denied", "Too many authentication failures")
        key = f" with the key {options.identity}" if options.identity else ""
        return DeviceAuthError(
            f"{dest} refused the SSH login{key} ({line.rstrip('.')}). edgebuild runs ssh with BatchMode=yes, "
            "so only keys work, never password prompts: pass the right private key with --identity PATH, "
            f"load it into ssh-agent, or install your public key on the device (`ssh-copy-id -p {port} {dest}`)."
        )
    if "Connection refused" in stderr:
        return DeviceConnectionError(
            f"Cannot connect to {device.host} port {port}: the connection was refused (no SSH server listens "
            "there, or a firewall rejects it). Check that the device is up and runs its SSH server "
            f"(`sudo systemctl status ssh` on the device), and the port in {device.url}."
        )
    if "Could not resolve hostname" in stderr or "Name or service not known" in stderr:
        return DeviceConnectionError(
            f"Cannot resolve the host name {device.host} ({_first_line(stderr, 'resolve', 'not known')}). "
            f"Check the spelling in {device.url}, or use the device's IP address (`.local` names need "
            "mDNS/Avahi on this computer)."
        )
    if any(s in stderr for s in ("timed out", "No route to host", "Network is unreachable", "Host is down")):
        line = _first_line(stderr, "timed out", "No route", "unreachable", "Host is down")
        return DeviceConnectionError(
            f"Cannot reach {device.host} port {port} ({line}; connect timeout "
            f"{options.connect_timeout:g} s). Check that the device is powered and on this network and that "
            "the address is right; raise --connect-timeout for slow links."
        )
    if "Connection closed" in stderr or "Connection reset" in stderr or "kex_exchange_identification" in stderr:
        return DeviceConnectionError(
            f"The SSH connection to {dest} (port {port}) was closed while {doing} ({_tail(stderr, 2)}). "
            "The SSH server may limit connections (MaxStartups) or be restarting; check it and try again."
        )
    return DeviceError(f"ssh to {dest} failed while {doing}: {_tail(stderr)}. Try `ssh {dest}` by hand to see why.")


# ---------------------------------------------------------------------------------------------
# the run


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          errors="replace", timeout=timeout, check=False)


def _parse_result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            try:
                return json.loads(line[len(RESULT_MARK):])
            except json.JSONDecodeError:
                return None
    return None


def _runner_failure(payload: dict[str, Any], device: SSHDevice, device_python: str, artifact: Path) -> DeviceError:
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
            "systems with NumPy 1" + (" (it does not load under this NumPy 2)" if numpy2 else "")
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
    except subprocess.TimeoutExpired:
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
            f"{_tail(proc.stderr + proc.stdout)}). Check that $TMPDIR (or /tmp) there is writable and not full."
        )
    remote_dir = lines[-1]

    finished = cleaned = False
    failure: BaseException | None = None
    try:
        files = [artifact, RUNNER]
        model_name = artifact.name
        try:
            copy = _run(scp_command(device, options, files, remote_dir), timeout + options.connect_timeout)
            if copy.returncode != 0 and _needs_legacy_scp(copy.stderr):
                # servers without the SFTP subsystem (dropbear, old embedded images) need scp's legacy protocol
                copy = _run(scp_command(device, options, files, remote_dir, legacy=True),
                            timeout + options.connect_timeout)
        except subprocess.TimeoutExpired:
            raise DeviceTimeout(
                f"Copying {artifact.name} to {dest} took longer than {timeout:g} s. Check the link speed, "
                "or raise the timeout."
            ) from None
        if copy.returncode != 0:
            if copy.returncode == 255 or "Connection" in copy.stderr:
                raise classify_ssh_failure(copy.stderr, device, options, f"copying {artifact.name}")
            raise DeviceSetupError(
                f"Copying {artifact.name} to {dest}:{remote_dir} failed: {_tail(copy.stderr)}. Check the free "
                "space there (`df -h /tmp` on the device)."
            )

        command = run_command(remote_dir, device_python, model_name, threads, runs, warmup, timeout, edgetpu)
        try:
            proc = _run(ssh_command(device, options, command), timeout + options.connect_timeout + 2)
        except subprocess.TimeoutExpired:
            proc = None
        payload = _parse_result(proc.stdout) if proc is not None else None
        cleaned = proc is not None and CLEANED_MARK in proc.stdout
        if proc is None or (payload is None and proc.returncode in (142, -14)):  # SIGALRM from --deadline
            raise DeviceTimeout(
                f"The benchmark on {dest} did not finish within {timeout:g} s ({len(threads)} thread "
                f"count(s), {warmup} warm-up + {runs} timed runs each). Lower --runs, or raise the timeout; "
                "the runner was stopped."
            )
        finished = True
        if payload is None:
            if proc.returncode == 255:
                raise classify_ssh_failure(proc.stderr, device, options, "running the benchmark")
            raise DeviceError(
                f"The benchmark runner on {dest} ended without a result (exit status {proc.returncode}): "
                f"{_tail(proc.stderr + proc.stdout)}. A crash inside the device's TensorFlow Lite runtime "
                "(exit status 134 or 139) usually means the runtime is broken or too old for this artifact."
            )
        if not payload.get("ok"):
            raise _runner_failure(payload, device, device_python, artifact)
    except BaseException as exc:  # noqa: BLE001 - clean up, then re-raise whatever it was
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


def _needs_legacy_scp(stderr: str) -> bool:
    return "subsystem request failed" in stderr or (
        "Connection closed" in stderr and not any(s in stderr for s in ("Permission denied", "Host key", "refused")))


def _cleanup(device: SSHDevice, options: SSHOptions, remote_dir: str, *, stop_runner: bool,
             timeout: float) -> dict[str, Any]:
    try:
        proc = _run(ssh_command(device, options, cleanup_command(remote_dir, stop_runner)), timeout)
        ok, detail = proc.returncode == 0, _tail(proc.stderr)
    except subprocess.TimeoutExpired:
        ok, detail = False, f"no answer within {timeout:g} s"
    if ok:
        return {"removed": True, "remote_dir": remote_dir}
    return {
        "removed": False,
        "remote_dir": remote_dir,
        "message": (f"The temporary folder {remote_dir} could not be removed from {device.destination} "
                    f"({detail}); remove it with `ssh {device.destination} rm -rf {remote_dir}`."),
    }
