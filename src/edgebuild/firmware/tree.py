"""A TFLite Micro source tree: its files and hashes, whether it is usable, its fingerprint."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from edgebuild.errors import UsageError
from edgebuild.firmware.flavors import Flavor
from edgebuild.firmware.store import _atomic_write, _sha, tflm_cache_dir

RESOLVER_HEADER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"
INTERPRETER_HEADER = "tensorflow/lite/micro/micro_interpreter.h"

TREE_HINT = (
    "Point edgebuild at a TensorFlow Lite Micro source tree with the mcu.tflm_dir profile key or "
    "EDGEBUILD_TFLM_DIR. To make one: `git clone https://github.com/tensorflow/tflite-micro && cd tflite-micro && "
    "python3 tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py --makefile_options="
    '"TARGET=cortex_m_generic TARGET_ARCH=cortex-m4 OPTIMIZED_KERNEL_DIR=cmsis_nn" /path/to/tflm_tree` '
    "(it downloads flatbuffers, gemmlowp, CMSIS and CMSIS-NN once)."
)


KERNEL_PREFIXES = ("tensorflow/lite/micro/kernels/", "signal/", "third_party/cmsis_nn/")
CMSIS_NN_KERNEL_DIR = "tensorflow/lite/micro/kernels/cmsis_nn/"
CORTEX_M_DIR = "tensorflow/lite/micro/cortex_m_generic/"
CMSIS_NN_SOURCE_DIR = "third_party/cmsis_nn/Source"


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
