"""Where the tests find a TensorFlow Lite Micro source tree for firmware builds (none: those tests skip, saying so)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tflm_tree() -> Path | None:
    """$EDGEBUILD_TFLM_DIR, else ../shared/tflm/tflm_tree beside the repo (CI), else /work/shared/tflm/tflm_tree."""
    candidates = [
        os.environ.get("EDGEBUILD_TFLM_DIR"),
        REPO.parent / "shared/tflm/tflm_tree",
        Path("/work/shared/tflm/tflm_tree"),
    ]
    for c in candidates:
        if c and (Path(c) / "tensorflow/lite/micro/micro_interpreter.h").is_file():
            return Path(c)
    return None


def tree_args() -> tuple[str, ...]:
    """`--set mcu.tflm_dir=...` for a build that should run its firmware when a tree is here."""
    tree = tflm_tree()
    return () if tree is None else ("--set", f'mcu.tflm_dir="{tree}"')
