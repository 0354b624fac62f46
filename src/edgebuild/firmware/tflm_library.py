"""The TensorFlow Lite Micro library a firmware links, built from a TFLM source tree and cached.

A TFLM tree (a `create_tflm_tree.py` output, e.g. `../shared/tflm/tflm_tree`) holds ~300 library
sources; compiling all of them costs about 5 minutes on 2 cores per compiler and flag set. A model
needs far fewer: the framework (interpreter, allocator, planner, flatbuffer parsing) plus the kernels
of its own ops and the helpers those call. So the library is built per op set:

1. the framework sources, plus the kernel files that define each op's `Register_<OP>()` (the
   registration `MicroMutableOpResolver::Add<Op>()` calls, read from the tree's own
   `micro_mutable_op_resolver.h`);
2. the closure: every symbol the selected objects leave undefined is looked up in the rest of the
   tree (CMSIS-NN's C files are named after their functions; C++ definitions are found by name and
   confirmed with `nm`), until nothing more resolves (the C/C++ runtime supplies the rest);
3. the objects go into one `libtflm.a`.

Every object is cached on its own, content-addressed like ccache's direct mode: the key is the
compiler's identity, the flags, the source path and bytes; each cached object also records the
hashes of the tree headers it included and is used only while they all still match. So a second op
set, a copy of the tree, or a tree with one edited kernel recompiles only what changed, and a build
after the first costs seconds. The op-set -> sources resolution and the archive are cached too.

`scope="full"` builds every library source instead (what `make cm4` in the tree builds), for
comparison and as a fallback.

The cache lives in `$EDGEBUILD_TFLM_CACHE_DIR`, else `<edgebuild cache dir>/tflm` (see
`edgebuild.cache.default_cache_dir`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from edgebuild.errors import ExternalToolError, UnsupportedError, UsageError

Log = Callable[[str], None]

CACHE_LAYOUT = 1  # bump when the cache layout or key composition changes
COMPILE_TIMEOUT_S = 600
RESOLVER_HEADER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"
INTERPRETER_HEADER = "tensorflow/lite/micro/micro_interpreter.h"

TREE_HINT = (
    "Point edgebuild at a TensorFlow Lite Micro source tree with the mcu.tflm_dir profile key or "
    "EDGEBUILD_TFLM_DIR. To make one: `git clone https://github.com/tensorflow/tflite-micro && cd tflite-micro && "
    "python3 tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py --makefile_options="
    '"TARGET=cortex_m_generic TARGET_ARCH=cortex-m4 OPTIMIZED_KERNEL_DIR=cmsis_nn" /path/to/tflm_tree` '
    "(it downloads flatbuffers, gemmlowp, CMSIS and CMSIS-NN once)."
)

# ------------------------------------------------------------------------------------------ flags
# They mirror upstream tensorflow/lite/micro/tools/make/Makefile (TARGET=linux and TARGET=cortex_m_generic
# with OPTIMIZED_KERNEL_DIR=cmsis_nn): -Os for the framework, -O2 for kernels, TF_LITE_STATIC_MEMORY
# (which changes struct layouts, so an application must be compiled with the same defines).
COMMON_FLAGS = (
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-ffunction-sections",
    "-fdata-sections",
    "-fmessage-length=0",
    "-DTF_LITE_STATIC_MEMORY",
    "-DTF_LITE_DISABLE_X86_NEON",
    "-DKERNELS_OPTIMIZED_FOR_SPEED",
)
CXX_ONLY = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics")
C_ONLY = ("-std=c17",)
TREE_INCLUDES = (
    ".",
    "third_party",
    "third_party/gemmlowp",
    "third_party/flatbuffers/include",
    "third_party/kissfft",
    "third_party/ruy",
)
CMSIS_INCLUDES = (
    "third_party/cmsis/CMSIS/Core/Include",
    "third_party/cmsis",
    "third_party/cmsis_nn",
    "third_party/cmsis_nn/Include",
)

KERNEL_PREFIXES = ("tensorflow/lite/micro/kernels/", "signal/", "third_party/cmsis_nn/")
CMSIS_NN_KERNEL_DIR = "tensorflow/lite/micro/kernels/cmsis_nn/"
CORTEX_M_DIR = "tensorflow/lite/micro/cortex_m_generic/"
CMSIS_NN_SOURCE_DIR = "third_party/cmsis_nn/Source"
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

# Library sources only tests use: left out of per-op libraries (the closure brings any back that is needed).
TEST_ONLY = frozenset(
    {
        "tensorflow/lite/micro/test_helpers.cc",
        "tensorflow/lite/micro/test_helper_custom_ops.cc",
        "tensorflow/lite/micro/fake_micro_context.cc",
        "tensorflow/lite/micro/mock_micro_graph.cc",
        "tensorflow/lite/micro/recording_micro_allocator.cc",
        "tensorflow/lite/micro/arena_allocator/recording_single_arena_buffer_allocator.cc",
        "tensorflow/lite/micro/kernels/kernel_runner.cc",
    }
)


@dataclass(frozen=True)
class Flavor:
    """One compiler + flag set + kernel choice: everything that makes two libraries differ.

    `kind` is "cortex-m" (cross compiler, cortex_m_generic debug log/time) or "host" (g++, TARGET=linux).
    `kernels` is "cmsis-nn" (Arm's optimized kernels replace the reference ones they cover) or "reference".
    """

    name: str
    kind: str
    kernels: str
    tool_prefix: str  # "arm-none-eabi-" or "" (host)
    arch_flags: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()
    includes: tuple[str, ...] = TREE_INCLUDES

    @property
    def cxx(self) -> str:
        return f"{self.tool_prefix}g++"

    @property
    def cc(self) -> str:
        return f"{self.tool_prefix}gcc"

    @property
    def ar(self) -> str:
        return f"{self.tool_prefix}ar"

    @property
    def nm(self) -> str:
        return f"{self.tool_prefix}nm"

    def base_flags(self) -> tuple[str, ...]:
        """Flags every TFLM source of this flavor is compiled with (before -O and the language flags)."""
        return (*COMMON_FLAGS, *self.arch_flags, *self.defines)

    def describe(self) -> str:
        where = "host g++" if self.kind == "host" else f"{self.cxx} {' '.join(self.arch_flags)}"
        return f"{self.name} ({where}, {self.kernels} kernels)"


def cortex_m_flavor(
    cpu: str, arch_flags: Sequence[str], cmsis_device: str, cpu_define: str, kernels: str = "cmsis-nn"
) -> Flavor:
    """The Cortex-M library for one CPU (board profiles give the arch flags and CMSIS device header)."""
    if kernels not in ("cmsis-nn", "reference"):
        raise UsageError(f"TFLite Micro kernels must be 'cmsis-nn' or 'reference', got {kernels!r}.")
    defines = [
        "-DTF_LITE_MCU_DEBUG_LOG",
        "-fomit-frame-pointer",
        f"-D{cpu_define}",
        "-funsigned-char",
        f'-DCMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE="{cmsis_device}.h"',
        f"-D{cmsis_device}",
        "-DARM_NN_ENABLE_F16=0",
        "-DARM_NN_ENABLE_F32=0",
    ]
    if kernels == "cmsis-nn":
        defines.insert(0, "-DCMSIS_NN")
    includes = (*TREE_INCLUDES, f"third_party/cmsis/Cortex_DFP/Device/{cmsis_device}/Include", *CMSIS_INCLUDES)
    return Flavor(
        name=f"{cpu}-{kernels}",
        kind="cortex-m",
        kernels=kernels,
        tool_prefix="arm-none-eabi-",
        arch_flags=tuple(arch_flags),
        defines=tuple(defines),
        includes=includes,
    )


HOST_FLAVOR = Flavor(
    name="host-reference", kind="host", kernels="reference", tool_prefix="", defines=("-DTF_LITE_USE_CTIME",)
)


# ------------------------------------------------------------------------------------------ the tree
@dataclass
class Tree:
    """A TFLM source tree: its files' hashes (read once) and its library sources."""

    root: Path
    hashes: dict[str, str]  # relative path -> sha256 of every file under tensorflow/, signal/, third_party/
    _texts: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for rel in sorted(self.hashes):
            digest.update(f"{rel}\0{self.hashes[rel]}\n".encode())
        return digest.hexdigest()

    def text(self, rel: str) -> str:
        if rel not in self._texts:
            self._texts[rel] = (self.root / rel).read_text(encoding="utf-8", errors="replace")
        return self._texts[rel]

    def library_sources(self, flavor: Flavor) -> list[str]:
        """Every library source for `flavor`, specialized as upstream's specialize_files.py does.

        A file in kernels/cmsis_nn/ replaces kernels/<same name>; one in cortex_m_generic/ replaces
        tensorflow/lite/micro/<same name>. CMSIS-NN's own C sources are added for cmsis-nn.
        """
        all_srcs = sorted(
            r for r in self.hashes if r.endswith((".cc", ".c")) and r.startswith(("tensorflow/", "signal/"))
        )
        cmsis_kernels = [r for r in all_srcs if r.startswith(CMSIS_NN_KERNEL_DIR)]
        cortex_m = [r for r in all_srcs if r.startswith(CORTEX_M_DIR)]
        common = [r for r in all_srcs if r not in set(cmsis_kernels) | set(cortex_m)]
        chosen: list[str] = []
        replaced: set[str] = set()
        if flavor.kind == "cortex-m":
            chosen += cortex_m
            replaced |= {"tensorflow/lite/micro/" + r[len(CORTEX_M_DIR) :] for r in cortex_m}
            if flavor.kernels == "cmsis-nn":
                chosen += cmsis_kernels
                replaced |= {"tensorflow/lite/micro/kernels/" + r[len(CMSIS_NN_KERNEL_DIR) :] for r in cmsis_kernels}
                chosen += sorted(r for r in self.hashes if r.startswith(CMSIS_NN_SOURCE_DIR + "/") and r.endswith(".c"))
        return sorted([r for r in common if r not in replaced] + chosen)


_TREE_CACHE: dict[tuple[str, float, int], Tree] = {}
_TREE_LOCK = threading.Lock()


def check_tree(root: Path) -> str | None:
    """Why `root` cannot be used as a TFLM tree (None when it can)."""
    root = Path(root)
    if not root.is_dir():
        return f"{root} is not a folder"
    if not (root / INTERPRETER_HEADER).is_file() or not (root / RESOLVER_HEADER).is_file():
        return f"{root} has no {INTERPRETER_HEADER}: it is not a TensorFlow Lite Micro source tree"
    if not (root / "third_party/flatbuffers/include").is_dir():
        if (root / "tensorflow/lite/micro/tools/make/Makefile").is_file():
            return (
                f"{root} is a tflite-micro checkout, not a generated tree (no third_party/flatbuffers): run "
                "tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py in it and point "
                "mcu.tflm_dir at the tree it writes"
            )
        return f"{root} has no third_party/flatbuffers/include: it is not a complete create_tflm_tree.py output"
    return None


def load_tree(root: Path) -> Tree:
    """Hash every file of the tree once per process (and again only when the folder changes)."""
    root = Path(root).resolve()
    problem = check_tree(root)
    if problem is not None:
        raise UsageError(f"Cannot build TensorFlow Lite Micro: {problem}. {TREE_HINT}")
    files = [
        p
        for top in ("tensorflow", "signal", "third_party")
        if (root / top).is_dir()
        for p in (root / top).rglob("*")
        if p.is_file()
    ]
    signature = (str(root), max((p.stat().st_mtime for p in files), default=0.0), len(files))
    with _TREE_LOCK:
        if signature in _TREE_CACHE:
            return _TREE_CACHE[signature]
    hashes = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    tree = Tree(root, hashes)
    with _TREE_LOCK:
        _TREE_CACHE[signature] = tree
    return tree


def tree_fingerprint(root: Path) -> str:
    """The tree's content fingerprint, remembered on disk per (path, file sizes, mtimes) like git's index.

    For the build cache's key: hashing every file (~0.9 s for the shared tree) would dominate a warm
    rebuild, while stat-ing them takes milliseconds; any edit changes a size or an mtime and rehashes.
    """
    root = Path(root).resolve()
    stats = sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
        for top in ("tensorflow", "signal", "third_party")
        if (root / top).is_dir()
        for p in (root / top).rglob("*")
        if p.is_file()
    )
    memo = tflm_cache_dir() / "trees" / _sha([str(root), stats])
    if memo.is_file():
        return memo.read_text().strip()
    fingerprint = load_tree(root).fingerprint
    _atomic_write(memo, fingerprint.encode())
    return fingerprint


# ------------------------------------------------------------------------------------------ ops -> sources
_ADD_METHOD = re.compile(r"TfLiteStatus\s+(Add\w+)\s*\(")
_REGISTER_REF = re.compile(r"\b(Register_\w+)\s*\(")
_REGISTER_DEF = re.compile(r"TFLMRegistration\s*\*?\s*(?:\w+::)*(Register_\w+)\s*\(\s*\)\s*\{")


def resolver_registrations(tree: Tree) -> dict[str, list[str]]:
    """Add method -> the Register_ functions it calls, read from the tree's micro_mutable_op_resolver.h."""
    text = tree.text(RESOLVER_HEADER)
    starts = [(m.start(), m.group(1)) for m in _ADD_METHOD.finditer(text)]
    table: dict[str, list[str]] = {}
    for (start, method), nxt in zip(starts, [s for s, _ in starts[1:]] + [len(text)], strict=True):
        table.setdefault(method, [])
        for name in _REGISTER_REF.findall(text[start:nxt]):
            if name not in table[method]:
                table[method].append(name)
    return table


def registration_files(tree: Tree, sources: Iterable[str]) -> dict[str, list[str]]:
    """Register_ function -> the sources (of this flavor) that define it."""
    found: dict[str, list[str]] = {}
    for rel in sources:
        if not rel.endswith(".cc"):
            continue
        text = tree.text(rel)
        if "Register_" not in text:
            continue
        for name in _REGISTER_DEF.findall(text):
            found.setdefault(name, []).append(rel)
    return found


def op_sources(tree: Tree, flavor: Flavor, ops: Sequence[tuple[str, str]], sources: Sequence[str]) -> list[str]:
    """The kernel files that register `ops` ((op name, Add method) pairs); UnsupportedError naming a missing op."""
    table = resolver_registrations(tree)
    defined = registration_files(tree, sources)
    chosen: list[str] = []
    for op, method in ops:
        if method not in table:
            raise UnsupportedError(
                f"The model uses {op}, but the TensorFlow Lite Micro tree at {tree.root} has no "
                f"MicroMutableOpResolver::{method}() in {RESOLVER_HEADER}, so the generated model_ops.h cannot "
                f"register it. Use a newer TFLite Micro tree that supports {op}, or replace that layer."
            )
        registrations = table[method]
        if not registrations:
            raise UnsupportedError(
                f"The model uses {op}, but {RESOLVER_HEADER} in {tree.root} names no Register_ function for "
                f"{method}(), so edgebuild cannot tell which kernel implements it."
            )
        for reg in registrations:
            files = defined.get(reg)
            if not files:
                raise UnsupportedError(
                    f"The model uses {op}, but the TensorFlow Lite Micro build {flavor.describe()} from {tree.root} "
                    f"has no kernel for it: MicroMutableOpResolver::{method}() needs {reg}(), which none of the "
                    f"tree's sources defines, so the firmware could not link. Use a TFLite Micro tree that includes "
                    f"the {op} kernel, or replace that layer."
                )
            for rel in files:
                if rel not in chosen:
                    chosen.append(rel)
    # <kernel>_common.cc holds the shared Prepare/params code of <kernel>.cc; take it along (the closure
    # would find it too, one round later).
    by_name = {Path(r).name: r for r in sources}
    for rel in list(chosen):
        common = by_name.get(Path(rel).stem + "_common.cc")
        if common and common not in chosen:
            chosen.append(common)
    return chosen


def framework_sources(sources: Sequence[str]) -> list[str]:
    """The non-kernel library sources (interpreter, allocator, planner, parsing, logging), minus test helpers."""
    return [
        r
        for r in sources
        if not r.startswith(KERNEL_PREFIXES) and not r.startswith("tensorflow/lite/kernels/") and r not in TEST_ONLY
    ]


# ------------------------------------------------------------------------------------------ tools
@cache
def compiler_identity(compiler: str) -> str:
    """`<path> | <first --version line> | <-dumpmachine>`: part of every object's cache key."""
    path = shutil.which(compiler)
    if path is None:
        raise ExternalToolError(f"{compiler} was not found on PATH.")
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
        machine = subprocess.run([path, "-dumpmachine"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExternalToolError(f"{compiler} --version failed: {exc}") from None
    first = version.strip().splitlines()[0] if version.strip() else "?"
    return f"{os.path.realpath(path)} | {first} | {machine.strip()}"


def missing_tools(flavor: Flavor) -> list[str]:
    return [t for t in (flavor.cxx, flavor.cc, flavor.ar, flavor.nm) if shutil.which(t) is None]


def default_jobs() -> int:
    env = os.environ.get("EDGEBUILD_JOBS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def tflm_cache_dir() -> Path:
    if os.environ.get("EDGEBUILD_TFLM_CACHE_DIR"):  # absolute: Makefiles run in other folders read its paths
        return Path(os.environ["EDGEBUILD_TFLM_CACHE_DIR"]).resolve()
    from edgebuild.cache import default_cache_dir

    return default_cache_dir() / "tflm"


def _stderr_log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sha(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextmanager
def _file_lock(path: Path, log: Log, what: str) -> Iterator[None]:
    """An exclusive lock shared with other edgebuild processes (two builds never compile the same library twice)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another edgebuild process that is building {what}...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
        todo: list[str] = []
        for rel in sources:
            obj = self.objects.lookup(rel)
            if obj is None:
                todo.append(rel)
            else:
                found[rel] = obj
        if not todo:
            return found
        lock = self.root / "locks" / f"{self.flavor.name}-{self.tree.fingerprint[:16]}.lock"
        with _file_lock(lock, self.log, f"TFLite Micro for {self.flavor.name}"):
            still = []
            for rel in todo:  # another process may have compiled them while we waited
                obj = self.objects.lookup(rel)
                if obj is None:
                    still.append(rel)
                else:
                    found[rel] = obj
            if still:
                found.update(self._compile_all(still, what))
        return found

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
                how = ("regex", rf"\b{re.escape(how[1])}\s*\(")
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


_NM_LINE = re.compile(r"^\s*(?:[0-9a-fA-F]+\s+)?([A-Za-z?-])\s+(\S.*)$")
_NOT_LIBRARY_NAMESPACES = frozenset(
    {
        "tflite",
        "micro",
        "tflm_signal",
        "reference_ops",
        "reference_integer_ops",
        "tensor_utils",
        "ops",
        "builtin",
        "std",
        "signal",
        "internal",
        "flatbuffers",
        "cpu_backend_gemm",
        "optimized_ops",
        "testing",
    }
)


def _definition_pattern(symbol: str) -> tuple[str, str] | None:
    """How to find the source defining a demangled symbol: ("stem", c_name) or ("regex", pattern); None to skip."""
    sym = symbol.strip()
    for prefix in ("vtable for ", "VTT for "):
        if sym.startswith(prefix):
            cls = _strip_templates(sym[len(prefix) :]).split("::")[-1]
            return ("regex", rf"\b{re.escape(cls)}::~?\w+\s*\(") if re.fullmatch(r"\w+", cls) else None
    if sym.startswith(("typeinfo", "guard variable", "non-virtual thunk", "__", "_Z")):
        return None
    depth, cut = 0, len(sym)
    for i, ch in enumerate(sym):  # the name ends at the first "(" outside template brackets
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            cut = i
            break
    parts = [p for p in _strip_templates(sym[:cut]).split("::") if p]
    if not parts or not re.fullmatch(r"~?\w+", parts[-1]) or parts[-1].startswith("operator"):
        return None
    name = parts[-1].lstrip("~")
    if len(parts) == 1 and cut == len(sym):  # a C symbol (function or variable)
        return "stem", name
    owner = parts[-2] if len(parts) >= 2 and parts[-2] not in _NOT_LIBRARY_NAMESPACES else None
    if owner:
        return "regex", rf"\b{re.escape(owner)}::~?{re.escape(name)}\s*\("
    return "regex", rf"\b{re.escape(name)}\s*\("


def _strip_templates(text: str) -> str:
    out, depth = [], 0
    for ch in text:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)
