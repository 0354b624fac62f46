"""How edgebuild reaches an SSH device: the URL, the OpenSSH options, the ssh/scp command lines,
and what ssh's stderr means when a connection fails.

Every call runs with `BatchMode=yes` (no password or passphrase prompts: keys only), a connect
timeout, and strict host-key checking (`StrictHostKeyChecking=yes`; `accept-new` only when the
user asks with --accept-new-host-key). Host-key checking is never turned off.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edgebuild.device.errors import (
    DeviceAuthError,
    DeviceConnectionError,
    DeviceError,
    DeviceHostKeyError,
)
from edgebuild.errors import UsageError


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
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={max(1, math.ceil(self.connect_timeout))}",
            "-o",
            "StrictHostKeyChecking=" + ("accept-new" if self.accept_new_host_key else "yes"),
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


def scp_command(
    device: SSHDevice, options: SSHOptions, files: list[Path], remote_dir: str, legacy: bool = False
) -> list[str]:
    """argv for copying `files` into `remote_dir` (SFTP protocol; `legacy` adds -O for old servers)."""
    port = ["-P", str(device.port)] if device.port else []
    target = shlex.quote(remote_dir) if legacy else remote_dir  # -O: the remote shell expands the path
    return [
        "scp",
        "-q",
        *(["-O"] if legacy else []),
        *options.common(),
        *port,
        "--",
        *[str(f) for f in files],
        f"{device.scp_host}:{target}/",
    ]


def needs_legacy_scp(stderr: str) -> bool:
    """scp failed the way servers without the SFTP subsystem (dropbear, old embedded images) make it fail."""
    return "subsystem request failed" in stderr or (
        "Connection closed" in stderr and not any(s in stderr for s in ("Permission denied", "Host key", "refused"))
    )


# ---------------------------------------------------------------------------------------------
# failures


def _first_line(stderr: str, *needles: str) -> str:
    for line in stderr.splitlines():
        if any(n.lower() in line.lower() for n in needles):
            return line.strip()
    return ""


def brief_tail(text: str, lines: int = 4) -> str:
    """The last non-empty lines of a tool's output on one line, for quoting in an error message."""
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:]) or "no output"


def classify_ssh_failure(stderr: str, device: SSHDevice, options: SSHOptions, doing: str) -> DeviceError:
    """Turn ssh/scp's stderr (exit status 255) into one actionable paragraph."""
    dest = device.destination
    port = device.port or 22
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or ("Host key for" in stderr and "has changed" in stderr):
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
            f"The SSH connection to {dest} (port {port}) was closed while {doing} ({brief_tail(stderr, 2)}). "
            "The SSH server may limit connections (MaxStartups) or be restarting; check it and try again."
        )
    return DeviceError(
        f"ssh to {dest} failed while {doing}: {brief_tail(stderr)}. Try `ssh {dest}` by hand to see why."
    )
