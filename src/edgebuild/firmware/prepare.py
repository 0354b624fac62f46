"""Compile TensorFlow Lite Micro ahead of the first mcu build: `edgebuild cache tflm`.

The library cache is per source file x compiler x flags, so compiling the kernels the common edge
models use (and the framework every model needs) once, at install time, leaves a first build only its
model-specific work. Building on demand stays correct: an op outside this set compiles when a model
needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# The ops of the TFLite Micro examples (hello_world, micro_speech, person_detection) and of the common
# small-model families (ResNet, DS-CNN, MobileNet, FC autoencoders, streaming keyword spotting).
COMMON_OPS = (
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "FULLY_CONNECTED",
    "LOGISTIC",
    "MAX_POOL_2D",
    "MEAN",
    "MUL",
    "PAD",
    "QUANTIZE",
    "RELU",
    "RELU6",
    "RESHAPE",
    "SOFTMAX",
    "STRIDED_SLICE",
    "SUB",
    "TANH",
)


def prepare(
    board: str = "mps2-an386",
    kernels: Sequence[str] = ("cmsis-nn",),
    host: bool = True,
    tflm_dir: Path | None = None,
    ops: Sequence[str] = COMMON_OPS,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Build (or find cached) the libraries for `ops`: one per kernel flavor for `board`, and the host one."""
    from edgebuild.codegen.ops import BUILTIN_METHODS
    from edgebuild.errors import UsageError
    from edgebuild.firmware.boards import load_board
    from edgebuild.firmware.stage import resolve_tflm_dir
    from edgebuild.firmware.tflm_library import HOST_FLAVOR, LibraryBuilder, missing_tools

    tree = resolve_tflm_dir(tflm_dir)
    if tree is None:
        raise UsageError("No TensorFlow Lite Micro tree: pass --tflm-dir or set EDGEBUILD_TFLM_DIR.")
    pairs = [(op, BUILTIN_METHODS[op]) for op in ops]
    flavors = [load_board(board).flavor(k) for k in kernels] + ([HOST_FLAVOR] if host else [])
    built = []
    for flavor in flavors:
        missing = missing_tools(flavor)
        if missing:
            log(f"skipped {flavor.describe()}: {', '.join(missing)} not found")
            continue
        built.append(LibraryBuilder(tree, flavor, log=log).build(pairs).describe())
    return built
