"""C/C++ sources for TensorFlow Lite Micro firmware, generated from a `.tflite` model.

`write_c_sources` writes:

- `model_data.h` / `model_data.cc`: the model as a 16-byte aligned byte array;
- `model_ops.h`: a `tflite::MicroMutableOpResolver<N>` with exactly the model's ops;
- `model_settings.h`: the measured tensor arena size, I/O quantization constants
  and quantize/dequantize helpers (only when the arena size is known);
- `main.cc`: a minimal example entry point (only when the arena size is known).

No TensorFlow import here: this stays fast enough for `edgebuild carray`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from edgebuild.artifact import TfliteArtifact
from edgebuild.codegen import render
from edgebuild.codegen.identifiers import validate_symbol
from edgebuild.codegen.ops import resolver_methods
from edgebuild.errors import UsageError

__all__ = ["CSourceOptions", "resolver_methods", "validate_symbol", "write_c_sources"]


@dataclass(frozen=True)
class CSourceOptions:
    """How to name and size the generated sources.

    symbol: the C identifier of the model array (its length is `<symbol>_len`).
    xxd_names: declare `unsigned char <symbol>[]` / `unsigned int <symbol>_len` exactly
        as `xxd -i` does (non-const, so the array also takes RAM) instead of const.
    arena_bytes: the measured tensor arena size, margin included. Without it,
        `model_settings.h` and `main.cc` are not written.
    """

    symbol: str = "g_model"
    xxd_names: bool = False
    arena_bytes: int | None = None

    def __post_init__(self) -> None:
        validate_symbol(self.symbol)
        if self.arena_bytes is not None and (
            isinstance(self.arena_bytes, bool) or not isinstance(self.arena_bytes, int) or self.arena_bytes <= 0
        ):
            raise UsageError(f"The tensor arena size must be a positive number of bytes, got {self.arena_bytes!r}.")


def write_c_sources(
    tflite_bytes: bytes, artifact: TfliteArtifact, out_dir: Path, options: CSourceOptions
) -> list[Path]:
    """Write the C/C++ sources for `tflite_bytes` into `out_dir`; return the paths written.

    Everything is rendered before the first file is written, so an unsupported op
    (UnsupportedError) leaves `out_dir` untouched.
    """
    tflite_bytes = bytes(tflite_bytes)
    if not tflite_bytes:
        raise UsageError("The model is empty (0 bytes): there is nothing to embed as a C array.")
    if artifact.sha256 != hashlib.sha256(tflite_bytes).hexdigest():
        raise ValueError("write_c_sources: the artifact was not read from these model bytes")
    sym, xxd = options.symbol, options.xxd_names
    files: dict[str, str] = {
        "model_data.h": render.model_data_h(tflite_bytes, artifact, sym, xxd),
        "model_data.cc": render.model_data_cc(tflite_bytes, artifact, sym, xxd),
        "model_ops.h": render.model_ops_h(tflite_bytes, artifact, sym),
    }
    if options.arena_bytes is not None:
        files["model_settings.h"] = render.model_settings_h(tflite_bytes, artifact, sym, options.arena_bytes)
        files["main.cc"] = render.main_cc(tflite_bytes, artifact, sym)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8", newline="\n")
        os.replace(tmp, path)
        written.append(path)
    return written
