"""The library of an op set: its sources closed over undefined symbols, compiled and archived."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebuild.errors import ExternalToolError, UsageError
from edgebuild.firmware.flavors import Flavor, missing_tools
from edgebuild.firmware.objects import ObjectCache, Pch, _opt
from edgebuild.firmware.resolve import _NM_LINE, _definition_pattern, framework_sources, op_sources
from edgebuild.firmware.store import (
    CACHE_LAYOUT,
    Log,
    _atomic_write,
    _children_cpu,
    _file_lock,
    _sha,
    _stderr_log,
    default_jobs,
    tflm_cache_dir,
)
from edgebuild.firmware.tree import load_tree

RESOLVER_VERSION = 2  # bump when `resolve` picks sources differently (2: C tables such as sigmoid_table_uint16)


# ------------------------------------------------------------------------------------------ the library
@dataclass
class Library:
    """A built libtflm.a and how it came about (JSON-able through `describe`)."""

    path: Path
    flavor: Flavor
    tree: Path
    tree_sha256: str
    scope: str
    sources: list[str]
    compiled: int  # objects compiled by this call (0: everything came from the cache)
    seconds: float
    cache_hit: bool
    compile_cpu_seconds: float = 0.0  # CPU time of the compilers this call ran (user + system)

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "flavor": self.flavor.name,
            "kernels": self.flavor.kernels,
            "tree": str(self.tree),
            "tree_sha256": self.tree_sha256,
            "scope": self.scope,
            "sources": len(self.sources),
            "objects_compiled": self.compiled,
            "seconds": round(self.seconds, 2),
            "compile_cpu_seconds": round(self.compile_cpu_seconds, 1),
            "cached": self.cache_hit,
        }


class LibraryBuilder:
    """Builds (or finds) the TFLM library for one tree and flavor."""

    def __init__(
        self,
        tree_dir: Path,
        flavor: Flavor,
        cache_dir: Path | None = None,
        jobs: int | None = None,
        log: Log | None = None,
    ) -> None:
        missing = missing_tools(flavor)
        if missing:
            raise ExternalToolError(
                f"{', '.join(missing)} not found: cannot build TensorFlow Lite Micro for {flavor.describe()}."
            )
        self.tree = load_tree(tree_dir)
        self.flavor = flavor
        self.root = Path(cache_dir).resolve() if cache_dir is not None else tflm_cache_dir()
        self.objects = ObjectCache(self.root, self.tree, flavor)
        self.jobs = jobs or default_jobs()
        self.log = log or _stderr_log
        self.sources = self.tree.library_sources(flavor)
        self._compiled = 0
        self._pchs: dict[str, Pch | None] = {}  # per -O level, for this builder's lifetime (one build call)
        self._pch_scratch: tempfile.TemporaryDirectory[str] | None = None

    # ---- compiling
    def _ensure_objects(self, sources: Sequence[str], what: str) -> dict[str, Path]:
        """Objects for `sources`, compiling the ones the cache lacks (in parallel, with progress)."""
        found: dict[str, Path] = {}
        todo = self._take_cached(sources, found)
        if not todo:
            return found
        lock = self.root / "locks" / f"{self.flavor.name}-{self.tree.fingerprint[:16]}.lock"
        with _file_lock(lock, self.log, f"TFLite Micro for {self.flavor.name}"):
            still = self._take_cached(todo, found)  # another process may have compiled some while we waited
            if still:
                found.update(self._compile_all(still, what))
        return found

    def _take_cached(self, sources: Sequence[str], found: dict[str, Path]) -> list[str]:
        """Put the cached objects of `sources` into `found`; return the sources still to compile."""
        missing = []
        for rel in sources:
            obj = self.objects.lookup(rel)
            if obj is None:
                missing.append(rel)
            else:
                found[rel] = obj
        return missing

    def _compile_all(self, todo: list[str], what: str) -> dict[str, Path]:
        total = len(todo)
        self.log(
            f"TFLite Micro {self.flavor.describe()}: compiling {total} {what} source(s) with {self.jobs} "
            f"job(s) (cached afterwards in {self.root})"
        )
        started = time.perf_counter()
        done = 0
        lock = threading.Lock()
        step = max(1, total // 10)
        result: dict[str, Path] = {}

        cxx = [r for r in todo if self.objects.uses_pch(r)]
        pchs = self._pchs
        wanted = [o for o in sorted({_opt(r) for r in cxx}) if o not in pchs]
        if wanted:
            if self._pch_scratch is None:
                self._pch_scratch = tempfile.TemporaryDirectory(prefix="pch-", dir=self.root)
            scratch = Path(self._pch_scratch.name)
            with ThreadPoolExecutor(max_workers=min(self.jobs, len(wanted))) as pool:
                for opt, pch in zip(
                    wanted, pool.map(lambda o: self.objects.build_pch(o, scratch), wanted), strict=True
                ):
                    pchs[opt] = pch
            self.log(f"  precompiled headers for {' '.join(wanted)} ready ({time.perf_counter() - started:.0f} s)")

        def one(rel: str) -> tuple[str, Path]:
            nonlocal done
            obj = self.objects.compile(rel, pchs.get(_opt(rel)))
            with lock:
                done += 1
                if done % step == 0 or done == total:
                    self.log(f"  [{done}/{total}] {rel} ({time.perf_counter() - started:.0f} s)")
            return rel, obj

        # Compile the slowest (C++) first so the pool does not end on one long file.
        order = sorted(todo, key=lambda r: (r.endswith(".c"), r))
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            for rel, obj in pool.map(one, order):
                result[rel] = obj
        self._compiled += total
        return result

    # ---- symbols
    def _symbols(self, objects: Sequence[Path]) -> tuple[set[str], set[str]]:
        """(defined, undefined) demangled symbols over `objects`."""
        from edgebuild.process import run_tool

        defined: set[str] = set()
        undefined: set[str] = set()
        for first in range(0, len(objects), 200):
            chunk = [str(o) for o in objects[first : first + 200]]
            res = run_tool([self.flavor.nm, "-C", *chunk], 120, self.flavor.nm)
            if res.returncode != 0:
                raise ExternalToolError(f"{self.flavor.nm} failed (exit {res.returncode}): {res.stderr.strip()}")
            for line in res.stdout.splitlines():
                m = _NM_LINE.match(line)
                if m is None:
                    continue
                kind, name = m.group(1), m.group(2).strip()
                if kind == "U":
                    undefined.add(name)
                elif kind not in ("w", "v"):
                    defined.add(name)
        return defined, undefined

    def _definers(self, symbols: set[str], candidates: Sequence[str]) -> list[str]:
        """Sources among `candidates` that look like they define one of `symbols` (confirmed later with nm).

        Helper files (no Register_ function) are searched first; an op's kernel file only when no helper
        matches, so a name that kernels merely mention does not pull whole kernels in.
        """
        by_stem = {Path(r).stem: r for r in candidates if r.endswith(".c")}
        helpers = [r for r in candidates if "Register_" not in self.tree.text(r)]
        kernels = [r for r in candidates if r not in set(helpers)]
        found: list[str] = []
        for sym in sorted(symbols):
            how = _definition_pattern(sym)
            if how is None:
                continue
            if how[0] == "stem":  # CMSIS-NN: one function per file, named after it
                if how[1] in by_stem:
                    if by_stem[how[1]] not in found:
                        found.append(by_stem[how[1]])
                    continue
                how = ("regex", rf"\b{re.escape(how[1])}\s*[\(\[=]")  # a function, or a table (`x[256] = {`)
            pattern = re.compile(rf"(?m)^[A-Za-z_][^;\n]*{how[1]}[^;\n]*$")
            for group in (helpers, kernels):
                hits = [r for r in group if pattern.search(self.tree.text(r))]
                if hits:
                    found.extend(r for r in hits if r not in found)
                    break
        return found

    def resolve(self, ops: Sequence[tuple[str, str]], extra_undefined: Iterable[str] = ()) -> list[str]:
        """The sources of the per-op library: framework + the ops' kernels + the closure of what they call."""
        selected = list(
            dict.fromkeys(framework_sources(self.sources) + op_sources(self.tree, self.flavor, ops, self.sources))
        )
        tried: set[str] = set()
        pending_extra = set(extra_undefined)
        for _ in range(12):
            objs = self._ensure_objects(selected, "library")
            defined, undefined = self._symbols([objs[r] for r in selected])
            missing = (undefined | pending_extra) - defined
            pending_extra = set()
            rest = [r for r in self.sources if r not in selected and r not in tried]
            candidates = self._definers(missing, rest)
            if not candidates:
                break
            tried.update(candidates)
            cand_objs = self._ensure_objects(candidates, "more library")
            cand_defined = {}
            for rel in candidates:
                cand_defined[rel], _ = self._symbols([cand_objs[rel]])
            added = [r for r in candidates if cand_defined[r] & missing]
            if not added:
                break
            selected += added
        return sorted(selected)

    # ---- the archive
    def build(
        self, ops: Sequence[tuple[str, str]] = (), scope: str = "ops", extra_undefined: Iterable[str] = ()
    ) -> Library:
        """The library for `ops` (scope "ops") or every library source (scope "full"), from the cache when built."""
        try:
            return self._build(ops, scope, extra_undefined)
        finally:  # precompiled headers are large (~250 MB each) and only speed up cold builds: never kept
            if self._pch_scratch is not None:
                self._pch_scratch.cleanup()
                self._pch_scratch = None
                self._pchs = {}

    def _build(self, ops: Sequence[tuple[str, str]], scope: str, extra_undefined: Iterable[str]) -> Library:
        if scope not in ("ops", "full"):
            raise UsageError(f"TFLM library scope must be 'ops' or 'full', got {scope!r}.")
        started = time.perf_counter()
        cpu_before = _children_cpu()
        self._compiled = 0
        extra = sorted(set(extra_undefined))
        if scope == "full":
            sources = list(self.sources)
        else:
            plan_key = _sha(
                {
                    "layout": CACHE_LAYOUT,
                    "resolver": RESOLVER_VERSION,
                    "tree": self.tree.fingerprint,
                    "flavor": self.flavor.name,
                    "flags": self.flavor.base_flags(),
                    "ops": sorted(m for _, m in ops),
                    "extra": extra,
                }
            )
            plan_file = self.root / "plans" / f"{plan_key}.json"
            planned: list[str] | None = None
            if plan_file.is_file():
                try:
                    planned = json.loads(plan_file.read_text())["sources"]
                except (OSError, ValueError, KeyError):
                    planned = None
            if planned is None:
                sources = self.resolve(ops, extra)
                _atomic_write(
                    plan_file, json.dumps({"ops": sorted(m for _, m in ops), "sources": sources}, indent=1).encode()
                )
            else:
                sources = planned
        objs = self._ensure_objects(sources, "library")
        lib_key = _sha(
            {
                "layout": CACHE_LAYOUT,
                "flavor": self.flavor.name,
                "objects": [[r, str(objs[r].relative_to(self.root))] for r in sources],
            }
        )
        lib = self.root / "libs" / lib_key[:2] / lib_key / "libtflm.a"
        hit = lib.is_file() and self._compiled == 0
        if not lib.is_file():
            self._archive(lib, [objs[r] for r in sources], sources)
        return Library(
            lib,
            self.flavor,
            self.tree.root,
            self.tree.fingerprint,
            scope,
            sources,
            self._compiled,
            time.perf_counter() - started,
            hit,
            _children_cpu() - cpu_before,
        )

    def _archive(self, lib: Path, objects: Sequence[Path], sources: Sequence[str]) -> None:
        from edgebuild.process import run_tool

        lib.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".ar-", dir=lib.parent) as scratch:
            # Archive members get names from their sources (the map file then says which file code came from).
            members = []
            for rel, obj in zip(sources, objects, strict=True):
                member = Path(scratch) / (rel.replace("/", "__") + ".o")
                shutil.copyfile(obj, member)
                members.append(member)
            tmp = Path(scratch) / "libtflm.a"
            res = run_tool([self.flavor.ar, "rcs", str(tmp), *map(str, members)], 300, self.flavor.ar)
            if res.returncode != 0:
                raise ExternalToolError(f"{self.flavor.ar} failed (exit {res.returncode}): {res.stderr.strip()}")
            _atomic_write(lib.with_name("sources.json"), json.dumps(list(sources), indent=1).encode())
            os.replace(tmp, lib)
