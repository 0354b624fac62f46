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

This module gathers the names; the work is in store (cache folder, hashes, locks), flavors (compilers and
flags), tree (a TFLM tree and its fingerprint), resolve (ops -> sources, symbol definitions), objects
(the per-object cache, precompiled headers) and library (Library, LibraryBuilder).
"""

from __future__ import annotations

from edgebuild.firmware.flavors import (
    C_ONLY,
    CMSIS_INCLUDES,
    COMMON_FLAGS,
    CXX_ONLY,
    HOST_FLAVOR,
    TREE_INCLUDES,
    Flavor,
    compiler_identity,
    cortex_m_flavor,
    missing_tools,
)
from edgebuild.firmware.library import Library, LibraryBuilder
from edgebuild.firmware.objects import COMPILE_TIMEOUT_S, PCH_HEADERS, PCH_NAME, ObjectCache, Pch
from edgebuild.firmware.objects import _parse_depfile as _parse_depfile
from edgebuild.firmware.resolve import _definition_pattern as _definition_pattern
from edgebuild.firmware.resolve import (
    framework_sources,
    op_sources,
    registration_files,
    resolver_registrations,
)
from edgebuild.firmware.store import CACHE_LAYOUT, Log, default_jobs, tflm_cache_dir
from edgebuild.firmware.tree import (
    CMSIS_NN_KERNEL_DIR,
    CMSIS_NN_SOURCE_DIR,
    CORTEX_M_DIR,
    INTERPRETER_HEADER,
    KERNEL_PREFIXES,
    RESOLVER_HEADER,
    TEST_ONLY,
    TREE_HINT,
    Tree,
    check_tree,
    load_tree,
    tree_fingerprint,
)

__all__ = [
    "CACHE_LAYOUT",
    "CMSIS_INCLUDES",
    "CMSIS_NN_KERNEL_DIR",
    "CMSIS_NN_SOURCE_DIR",
    "COMMON_FLAGS",
    "COMPILE_TIMEOUT_S",
    "CORTEX_M_DIR",
    "CXX_ONLY",
    "C_ONLY",
    "HOST_FLAVOR",
    "INTERPRETER_HEADER",
    "KERNEL_PREFIXES",
    "PCH_HEADERS",
    "PCH_NAME",
    "RESOLVER_HEADER",
    "TEST_ONLY",
    "TREE_HINT",
    "TREE_INCLUDES",
    "Flavor",
    "Library",
    "LibraryBuilder",
    "Log",
    "ObjectCache",
    "Pch",
    "Tree",
    "check_tree",
    "compiler_identity",
    "cortex_m_flavor",
    "default_jobs",
    "framework_sources",
    "load_tree",
    "missing_tools",
    "op_sources",
    "registration_files",
    "resolver_registrations",
    "tflm_cache_dir",
    "tree_fingerprint",
]
