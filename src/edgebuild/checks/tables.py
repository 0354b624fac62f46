"""Supported-op tables, kept as TOML data next to the code and loaded once.

Each table names the runtime version it reflects, so a finding can say *which*
Edge TPU runtime, tflite-micro build or LiteRT delegate it was checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import tomllib


@dataclass(frozen=True)
class OpEntry:
    name: str
    since: int | None = None  # Edge TPU runtime version that added the op
    limits: tuple[str, ...] = ()  # rule ids of per-op constraints
    note: str = ""


@dataclass(frozen=True)
class OpTable:
    rule_set: str
    runtime: str
    source: str
    ops: dict[str, OpEntry] = field(default_factory=dict)  # builtin operators
    custom_ops: frozenset[str] = frozenset()  # custom codes the runtime registers by name

    def __contains__(self, op_name: str) -> bool:
        """Whether the builtin operator `op_name` is in the table (custom ops: see `has_kernel`)."""
        return op_name in self.ops

    def has_kernel(self, op_name: str, *, custom: bool) -> bool:
        """Whether the runtime has a kernel for the op: builtins by name, custom ops by custom code."""
        return op_name in (self.custom_ops if custom else self.ops)


TABLE_FILES = {
    "edgetpu": "edgetpu_ops.toml",
    "mcu": "mcu_ops.toml",
    "xnnpack": "xnnpack_ops.toml",
    "gpu": "gpu_ops.toml",
}


def _entries(raw: Any) -> dict[str, OpEntry]:
    if isinstance(raw, list):  # plain list of names
        return {name: OpEntry(name) for name in raw}
    out: dict[str, OpEntry] = {}
    for name, spec in raw.items():
        since = spec.get("since")
        out[name] = OpEntry(
            name=name,
            since=None if since in (None, "all") else int(since),
            limits=tuple(spec.get("limits", ())),
            note=spec.get("note", ""),
        )
    return out


@cache
def load_table(name: str) -> OpTable:
    """The table called `name` (a key of TABLE_FILES), parsed from the package data."""
    text = resources.files(__package__).joinpath(TABLE_FILES[name]).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return OpTable(
        rule_set=data["rule_set"],
        runtime=data["runtime"],
        source=data.get("source", ""),
        ops=_entries(data["ops"]),
        custom_ops=frozenset(data.get("custom_ops", ())),
    )


# Custom ops that LiteRT's default op resolver (BuiltinOpResolver, register.cc)
# registers by name; they are also the only such names in the ai-edge-litert
# 2.3.0 binaries. Every other custom op needs a kernel the app registers itself.
LITERT_CUSTOM_OPS = frozenset({"AudioSpectrogram", "Mfcc", "NumericVerify", "TFLite_Detection_PostProcess"})


def tflm_only_custom_op(op_name: str) -> bool:
    """A custom op TFLite Micro registers (e.g. its signal library's SignalWindow) but LiteRT does not."""
    return op_name in load_table("mcu").custom_ops and op_name not in LITERT_CUSTOM_OPS
