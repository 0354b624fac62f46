"""One error hierarchy for every user-facing failure.

Each class carries its own exit code, so scripts can tell a bad flag from a
failed accuracy gate. Anything that is *not* an EdgebuildError is a bug and
shows a traceback.
"""

from __future__ import annotations


class EdgebuildError(Exception):
    """A failure the user can fix; the message says what, where and how."""

    exit_code = 1
    title = "error"


class UsageError(EdgebuildError):
    exit_code = 2
    title = "usage error"


class ProfileError(EdgebuildError):
    exit_code = 3
    title = "profile error"


class ModelError(EdgebuildError):
    exit_code = 4
    title = "model error"


class DataError(EdgebuildError):
    exit_code = 5
    title = "data error"


class UnsupportedError(EdgebuildError):
    exit_code = 6
    title = "not supported"


class ConversionError(EdgebuildError):
    exit_code = 7
    title = "conversion failed"


class GateFailed(EdgebuildError):
    """Validation gates failed: artifacts and report are kept for inspection."""

    exit_code = 8
    title = "validation failed"


class ArtifactError(EdgebuildError):
    exit_code = 9
    title = "artifact error"


class ExternalToolError(EdgebuildError):
    exit_code = 10
    title = "external tool failed"


class StageTimeout(EdgebuildError):
    """A stage ran past its time limit: the watchdog ends the build instead of letting it hang."""

    exit_code = 11
    title = "stage timed out"
