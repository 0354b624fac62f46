"""Installed package versions, read from metadata (no imports): for reports, cache keys and `doctor`."""

from __future__ import annotations

from importlib import metadata


def package_versions(names: tuple[str, ...], missing: str | None = None) -> dict[str, str]:
    """{name: version}; a package that is not installed maps to `missing`, or is left out when that is None."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if missing is not None:
                versions[name] = missing
    return versions
