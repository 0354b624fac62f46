"""Normalizing the arguments: target names, profile overrides as CLI strings, device options, paths."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from edgebuild.errors import UsageError

if TYPE_CHECKING:
    from edgebuild.api import Overrides


def _is_path(value: object) -> TypeGuard[str | os.PathLike[str]]:
    return isinstance(value, (str, os.PathLike))


def _target_names(targets: Any) -> tuple[str, ...]:
    if targets is None:
        return ()
    if _is_path(targets):
        return (str(targets),)
    return tuple(str(t) for t in targets)


def _override_strings(overrides: Overrides) -> list[str]:
    """{"a.b": value} (or nested dicts) -> ["a.b=<TOML value>"]; strings pass through."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        return [overrides]
    if not isinstance(overrides, Mapping):
        return [str(o) for o in overrides]
    import tomli_w

    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = value

    walk("", overrides)
    strings = []
    for key, value in flat.items():
        if isinstance(value, os.PathLike):
            value = str(value)
        try:
            literal = tomli_w.dumps({"v": value}).strip()[len("v = ") :]
        except TypeError:
            raise UsageError(
                f"Override {key}={value!r}: {type(value).__name__} is not a TOML value "
                "(use str, int, float, bool or a list of them)."
            ) from None
        strings.append(f"{key}={literal}")
    return strings


def _path_options(options: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {"identity", "accept_new_host_key", "known_hosts", "device_python", "benchmark_model", "connect_timeout"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise UsageError(f"Unknown device option(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}.")
    paths = {"identity", "known_hosts"}
    return {k: Path(v) if k in paths and v is not None else v for k, v in options.items()}
