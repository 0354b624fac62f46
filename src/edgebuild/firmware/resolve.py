"""Ops -> sources: the kernel files registering each op, the framework, and the symbols that name a definition."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from edgebuild.errors import UnsupportedError
from edgebuild.firmware.flavors import Flavor
from edgebuild.firmware.tree import KERNEL_PREFIXES, RESOLVER_HEADER, TEST_ONLY, Tree

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
