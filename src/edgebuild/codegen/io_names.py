"""C names for a multi-input model's inputs, made from the model's own input names.

`image` becomes `kImageScale`, `QuantizeImage(float)`; `side-vec:0` becomes `kSideVec...`. Each name is
checked to be a usable, distinct identifier (a name that cannot be made into one falls back to `Input<i>`),
so the generated header always compiles. Single-input models keep only the indexed names (`kInput...`).
"""

from __future__ import annotations

import re

from edgebuild.artifact import TfliteArtifact
from edgebuild.codegen.identifiers import symbol_problem

_WORDS = re.compile(r"[A-Za-z0-9]+")


def camel(name: str) -> str:
    """`side_vec:0` -> `SideVec0`; empty when nothing alphanumeric is left."""
    return "".join(word[:1].upper() + word[1:] for word in _WORDS.findall(name.split(":")[0]))


def input_c_names(artifact: TfliteArtifact) -> list[str]:
    """One CamelCase stem per artifact input (artifact order), distinct and usable in `k<Stem>Scale`."""
    stems: list[str] = []
    for i, name in enumerate(artifact.input_signature_names()):
        stem = camel(name)
        if not stem or stem[0].isdigit() or stem in stems or stem.startswith(("Input", "Output")):
            stem = f"Input{i}" if f"Input{i}" not in stems else f"Input{i}_"
        if symbol_problem(f"k{stem}Scale") or symbol_problem(f"Quantize{stem}"):
            stem = f"Input{i}"
        stems.append(stem)
    return stems
