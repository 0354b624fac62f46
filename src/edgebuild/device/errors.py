"""Device benchmark failures: one class per thing the user fixes differently.

All are `ExternalToolError`s (exit code 10: ssh, scp, adb or the device's own
runtime failed), except `DeviceArtifactError`, which is also an
`ArtifactError` and exits with its code (9), like an artifact the host runtime
cannot load.
"""

from __future__ import annotations

from edgebuild.errors import ArtifactError, ExternalToolError


class DeviceError(ExternalToolError):
    """A device benchmark failed; the message says where and what to do."""

    title = "device benchmark failed"


class DeviceConnectionError(DeviceError):
    """Unreachable host, closed port, unknown host name, adb device not attached."""

    title = "device unreachable"


class DeviceAuthError(DeviceError):
    """The device refused our key (SSH) or has not authorized this computer (adb)."""

    title = "device authentication failed"


class DeviceHostKeyError(DeviceError):
    """The device's SSH host key is unknown, or differs from the one in known_hosts."""

    title = "device host key not trusted"


class DeviceSetupError(DeviceError):
    """Something the benchmark needs is missing on the device (or ssh/adb on this computer)."""

    title = "device not ready"


class DeviceTimeout(DeviceError):
    title = "device benchmark timed out"


class DeviceArtifactError(DeviceError, ArtifactError):
    """The device's runtime cannot load or run the artifact."""

    exit_code = ArtifactError.exit_code
    title = "artifact does not run on the device"
