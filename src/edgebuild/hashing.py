"""Content hashes of files and folders (model identity in reports, cache keys)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def hash_path(path: Path) -> str:
    """sha256 of a file, or of every file in a folder (relative path + bytes, in sorted order)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
