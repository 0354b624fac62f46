"""A content-addressed cache of finished target folders.

The key hashes everything that decides the output: the model files, the
resolved profile and the files it points to (Vela config, distillation models,
an explicit edgetpu_compiler), the data files, the relevant CLI flags, and the versions of
edgebuild, TensorFlow, LiteRT, TFLite Micro and the compilers. A hit restores
the folder without importing TensorFlow. Entries are written to a temporary
folder and renamed into place (atomic; concurrent writers of one key are
harmless), and every file is verified against its sha256 when read: a corrupt
entry is reported, deleted and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgebuild import __version__
from edgebuild.hashing import hash_path
from edgebuild.versions import package_versions

MANIFEST = "manifest.json"
KEY_VERSION = 1
_PACKAGES = (
    "tensorflow",
    "tf-keras",
    "keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "tflite-micro",
    "ethos-u-vela",
    "numpy",
)
DEFAULT_COMPILER = "edgetpu_compiler"
_TOOLS = ("arm-none-eabi-g++", "qemu-system-arm", "g++", DEFAULT_COMPILER)


def default_cache_dir() -> Path:
    """$EDGEBUILD_CACHE_DIR, else the XDG cache dir ($XDG_CACHE_HOME or ~/.cache)/edgebuild."""
    if os.environ.get("EDGEBUILD_CACHE_DIR"):
        return Path(os.environ["EDGEBUILD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgebuild"


@lru_cache(maxsize=1)
def stack_fingerprint() -> dict[str, str]:
    """Versions that change outputs: packages (from metadata, no imports) and external compilers."""
    versions = {"edgebuild": __version__, "key_version": str(KEY_VERSION), **package_versions(_PACKAGES, "absent")}
    for tool in _TOOLS:
        path = shutil.which(tool)
        if path is None:
            versions[tool] = "absent"
            continue
        try:
            result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
            versions[tool] = (
                (result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr) else path
            )
        except (OSError, subprocess.TimeoutExpired):
            versions[tool] = path
    return versions


def build_key(
    *,
    model_sha256: str,
    profile_toml: str,
    data_sha256: dict[str, str | None],
    flags: dict[str, Any],
    versions: dict[str, str],
    files: dict[str, str | None] | None = None,
) -> str:
    """`files`: `referenced_files(profile)`, the contents of the files the profile points to."""
    payload = json.dumps(
        {
            "model": model_sha256,
            "profile": profile_toml,
            "data": data_sha256,
            "flags": flags,
            "versions": versions,
            "files": files or {},
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def referenced_files(profile: Any) -> dict[str, str | None]:
    """Profile key -> sha256 of the file (or model folder) it points to, for every file the build reads.

    The profile's TOML holds only the path; the content decides the output too, so it goes into the key.
    Paths resolve as the stages resolve them: relative to the working directory; a bare
    `edgetpu.compiler` name through PATH. None when the file does not exist (the build will say so). Only
    files the build would read are listed: the Vela config when Vela runs and the name is a file (else Vela
    looks it up among its own bundled configs, covered by Vela's version), the distillation teacher and
    student when distillation is on and they name paths, and an explicitly configured edgetpu_compiler
    (the default one on PATH is covered by its version in `stack_fingerprint`).
    """
    files: dict[str, str | None] = {}
    vela = profile.vela
    if vela.accelerator and vela.config_file:
        path = Path(vela.config_file)
        files["vela.config_file"] = _file_sha256(path) if path.is_file() else None
    distillation = profile.distillation
    if distillation.enabled:
        if distillation.teacher != "original":
            files["distillation.teacher"] = _file_sha256(Path(distillation.teacher))
        if distillation.student != "pruned" and Path(distillation.student).exists():  # not "width:F": a model file
            files["distillation.student"] = _file_sha256(Path(distillation.student))
    files.update(_firmware_files(profile))
    edgetpu = profile.edgetpu
    if edgetpu.compile and edgetpu.compiler != DEFAULT_COMPILER:
        from edgebuild.compilers.edgetpu import find_compiler

        resolved = find_compiler(edgetpu.compiler)
        files["edgetpu.compiler"] = _file_sha256(Path(resolved)) if resolved else None
    return files


def _firmware_files(profile: Any) -> dict[str, str | None]:
    """The firmware stage's inputs: the TFLite Micro tree (content fingerprint) and a board file given by path."""
    mcu = profile.mcu
    if not (mcu.c_array and mcu.firmware and profile.validation.enabled):
        return {}
    from edgebuild.firmware.stage import resolve_tflm_dir
    from edgebuild.firmware.tflm_library import check_tree, tree_fingerprint

    files: dict[str, str | None] = {}
    tree = resolve_tflm_dir(mcu.tflm_dir)
    files["mcu.tflm_dir"] = tree_fingerprint(tree) if tree is not None and check_tree(tree) is None else None
    if Path(mcu.board).suffix == ".toml":
        files["mcu.board"] = _file_sha256(Path(mcu.board))
    return files


def _file_sha256(path: Path) -> str | None:
    return hash_path(path) if path.exists() else None


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path


class BuildCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries = root / "entries"

    def _entry_dir(self, key: str) -> Path:
        return self.entries / key[:2] / key

    def lookup(self, key: str) -> tuple[CacheEntry | None, str | None]:
        """(entry, None) on a verified hit; (None, reason) when a corrupt entry was found and removed."""
        path = self._entry_dir(key)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            return None, None
        problem = _verify(path)
        if problem is not None:
            shutil.rmtree(path, ignore_errors=True)
            return None, f"cache entry {key[:12]} was corrupt ({problem}); rebuilt it"
        return CacheEntry(key, path), None

    def store(self, key: str, source_dir: Path) -> None:
        """Copy a finished target folder into the cache atomically (first writer wins)."""
        final = self._entry_dir(key)
        if final.exists():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = final.parent / f".{key}.{uuid.uuid4().hex}.tmp"
        shutil.copytree(source_dir, staging / "files")
        files = {
            str(p.relative_to(staging / "files")): hash_path(p)
            for p in sorted((staging / "files").rglob("*"))
            if p.is_file()
        }
        (staging / MANIFEST).write_text(json.dumps({"key": key, "created": time.time(), "files": files}, indent=1))
        try:
            staging.rename(final)
        except OSError:  # another build stored the same key first
            shutil.rmtree(staging, ignore_errors=True)

    def restore(self, entry: CacheEntry, dest: Path) -> None:
        shutil.copytree(entry.path / "files", dest)

    def info(self) -> dict[str, Any]:
        entries = [p for p in self.entries.glob("*/*") if (p / MANIFEST).is_file()] if self.entries.exists() else []
        size = sum(f.stat().st_size for e in entries for f in e.rglob("*") if f.is_file())
        return {"path": str(self.root), "entries": len(entries), "size_bytes": size}

    def clear(self) -> int:
        count: int = self.info()["entries"]
        shutil.rmtree(self.entries, ignore_errors=True)
        return count


def _verify(path: Path) -> str | None:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError):
        return "unreadable manifest"
    for name, expected in files.items():
        file = path / "files" / name
        if not file.is_file():
            return f"{name} missing"
        if hash_path(file) != expected:
            return f"{name} does not match its hash"
    return None
