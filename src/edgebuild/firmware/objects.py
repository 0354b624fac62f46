"""Compiled objects, cached one by one (keyed like ccache's direct mode), and precompiled headers."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgebuild.errors import ExternalToolError
from edgebuild.firmware.flavors import C_ONLY, CXX_ONLY, Flavor, compiler_identity
from edgebuild.firmware.store import CACHE_LAYOUT, _atomic_write, _sha
from edgebuild.firmware.tree import KERNEL_PREFIXES, Tree

COMPILE_TIMEOUT_S = 600


# Precompiled header for cold builds: parsing these (flatbuffers' schema above all) is most of compiling one
# TFLM C++ file; with it a cold library takes ~40% less time. The code is the same with and without it, but
# GCC may emit an object's sections in another order, so whether it was used is part of each object's key and
# every eligible file always uses it (EDGEBUILD_TFLM_PCH=0 turns it off): the same inputs give the same objects.
PCH_NAME = "edgebuild_tflm_pch.h"
PCH_HEADERS = (
    "tensorflow/lite/schema/schema_generated.h",
    "tensorflow/lite/c/common.h",
    "tensorflow/lite/kernels/internal/common.h",
    "tensorflow/lite/kernels/internal/types.h",
    "tensorflow/lite/kernels/kernel_util.h",
    "tensorflow/lite/micro/kernels/kernel_util.h",
    "tensorflow/lite/micro/micro_log.h",
    "tensorflow/lite/micro/micro_context.h",
)


# ------------------------------------------------------------------------------------------ object cache
class ObjectCache:
    """Objects keyed by compiler, flags, path and source bytes, each valid while its included headers match."""

    def __init__(self, root: Path, tree: Tree, flavor: Flavor) -> None:
        self.root = root / "objects"
        self.tree = tree
        self.flavor = flavor

    def compile_command(self, rel: str, obj: Path, depfile: Path) -> list[str]:
        is_c = rel.endswith(".c")
        tool = self.flavor.cc if is_c else self.flavor.cxx
        opt = _opt(rel)
        lang = C_ONLY if is_c else CXX_ONLY
        includes = [f"-I{i}" for i in self.flavor.includes]
        return [
            tool,
            *lang,
            *self.flavor.base_flags(),
            opt,
            *includes,
            "-MMD",
            "-MF",
            str(depfile),
            "-c",
            rel,
            "-o",
            str(obj),
        ]

    def key(self, rel: str) -> str:
        tool = self.flavor.cc if rel.endswith(".c") else self.flavor.cxx
        flags = self.compile_command(rel, Path("OBJ"), Path("DEP"))[1:]
        payload = {
            "layout": CACHE_LAYOUT,
            "compiler": compiler_identity(tool),
            "flags": flags,
            "source": rel,
            "sha256": self.tree.hashes[rel],
        }
        if self.uses_pch(rel):
            payload["pch"] = PCH_HEADERS
        return _sha(payload)

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def lookup(self, rel: str) -> Path | None:
        folder = self._dir(self.key(rel))
        if not folder.is_dir():
            return None
        for deps_file in sorted(folder.glob("*.deps.json")):
            try:
                deps = json.loads(deps_file.read_text())
            except (OSError, ValueError):
                continue
            if all(self.tree.hashes.get(path) == digest for path, digest in deps.items()):
                obj = deps_file.with_name(deps_file.name[: -len(".deps.json")] + ".o")
                if obj.is_file():
                    return obj
        return None

    def uses_pch(self, rel: str) -> bool:
        """C++ sources that define or undefine a macro before their first #include keep their own include order."""
        if not rel.endswith(".cc") or os.environ.get("EDGEBUILD_TFLM_PCH", "1") == "0":
            return False
        for line in self.tree.text(rel).splitlines():
            stripped = line.strip()
            if stripped.startswith("#include"):
                return True
            if stripped.startswith(("#define", "#undef")):
                return False
        return True

    def compile(self, rel: str, pch: Pch | None = None) -> Path:
        folder = self._dir(self.key(rel))
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="edgebuild-tflm-", dir=folder) as scratch:
            obj, dep = Path(scratch) / "out.o", Path(scratch) / "out.d"
            cmd = self.compile_command(rel, obj, dep)
            from edgebuild.process import run_tool, tail

            used_pch = pch if pch is not None and self.uses_pch(rel) else None
            if used_pch is not None:
                cut = cmd.index("-MMD")
                cmd_pch = [*cmd[:cut], "-I", str(used_pch.folder), "-include", PCH_NAME, "-Winvalid-pch", *cmd[cut:]]
                result = run_tool(cmd_pch, COMPILE_TIMEOUT_S, cmd[0], cwd=self.tree.root)
                if result.returncode != 0:  # never fail because of the accelerator: compile the plain way
                    used_pch = None
            if used_pch is None:
                result = run_tool(cmd, COMPILE_TIMEOUT_S, cmd[0], cwd=self.tree.root)
            if result.returncode != 0:
                raise ExternalToolError(
                    f"Compiling TensorFlow Lite Micro's {rel} for {self.flavor.describe()} failed "
                    f"(exit {result.returncode}):\n{tail(result.output, 20)}\n"
                    f"Command (in {self.tree.root}): {' '.join(cmd)}"
                )
            deps = dict(used_pch.deps) if used_pch is not None else {}
            for path in _parse_depfile(dep.read_text()):
                rel_dep = _tree_relative(path, self.tree.root)
                if rel_dep is not None and rel_dep in self.tree.hashes:
                    deps[rel_dep] = self.tree.hashes[rel_dep]
            deps_id = _sha(deps)[:24]
            final_obj = folder / f"{deps_id}.o"
            os.replace(obj, final_obj)
            _atomic_write(folder / f"{deps_id}.deps.json", json.dumps(deps, sort_keys=True).encode())
        return final_obj

    def build_pch(self, opt: str, scratch: Path) -> Pch | None:
        """The precompiled header for C++ files compiled with `opt` (None if it cannot be built)."""
        from edgebuild.process import run_tool

        headers = [h for h in PCH_HEADERS if h in self.tree.hashes]
        if not headers:
            return None
        folder = scratch / opt.lstrip("-")
        folder.mkdir(parents=True, exist_ok=True)
        header = folder / PCH_NAME
        header.write_text("".join(f'#include "{h}"\n' for h in headers))
        dep = folder / "pch.d"
        cmd = [
            self.flavor.cxx,
            *CXX_ONLY,
            *self.flavor.base_flags(),
            opt,
            *(f"-I{i}" for i in self.flavor.includes),
            "-MMD",
            "-MF",
            str(dep),
            "-x",
            "c++-header",
            str(header),
            "-o",
            str(header) + ".gch",
        ]
        result = run_tool(cmd, COMPILE_TIMEOUT_S, self.flavor.cxx, cwd=self.tree.root)
        if result.returncode != 0:
            return None
        deps = {}
        for path in _parse_depfile(dep.read_text()):
            rel_dep = _tree_relative(path, self.tree.root)
            if rel_dep is not None and rel_dep in self.tree.hashes:
                deps[rel_dep] = self.tree.hashes[rel_dep]
        return Pch(folder, deps)


@dataclass(frozen=True)
class Pch:
    folder: Path  # holds edgebuild_tflm_pch.h and its .gch
    deps: dict[str, str]  # tree headers it includes, with their hashes (recorded in every object built with it)


def _opt(rel: str) -> str:
    """-O2 for kernels (TFLM, signal, CMSIS-NN), -Os for the framework, as upstream."""
    return "-O2" if rel.startswith(KERNEL_PREFIXES) else "-Os"


def _parse_depfile(text: str) -> list[str]:
    body = text.replace("\\\n", " ")
    _, _, deps = body.partition(":")
    return [d.replace("\\ ", " ") for d in re.split(r"(?<!\\)\s+", deps.strip()) if d]


def _tree_relative(path: str, root: Path) -> str | None:
    p = Path(path)
    if not p.is_absolute():
        return os.path.normpath(path)
    try:
        return str(p.resolve().relative_to(root))
    except ValueError:
        return None
