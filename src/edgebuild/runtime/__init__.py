"""Run `.tflite` artifacts: one LiteRT adapter and the TensorFlow Lite Micro runner.

Everything here takes and returns float data (see runtime.io), so accuracy checks can compare a quantized
artifact with its float source without knowing its I/O types. TensorFlow is never imported here, and the
runtimes are imported lazily, so `import edgebuild.runtime` is cheap.

- `litert`: LiteRTModel (default or reference kernels);
- `tflm`: one model in TensorFlow Lite Micro's interpreter, and the arena search;
- `tflm_pool`: the worker process TFLM runs in, and the public calls below.
"""

from edgebuild.runtime.io import InputData
from edgebuild.runtime.litert import LiteRTModel
from edgebuild.runtime.tflm import ArenaSearch, recommended_arena
from edgebuild.runtime.tflm_pool import arena_is_sufficient, measure_arena, prove_arena, tflm_predict

__all__ = [
    "ArenaSearch",
    "InputData",
    "LiteRTModel",
    "arena_is_sufficient",
    "measure_arena",
    "prove_arena",
    "recommended_arena",
    "tflm_predict",
]
