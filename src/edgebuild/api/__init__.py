"""The Python API: build, validate and benchmark a model from a notebook or a training script.

```python
import edgebuild

result = edgebuild.build(model, targets=["mcu", "mobile"], data=(x_test, y_test))
result                                  # a summary table in Jupyter, plain text elsewhere
result["mcu"].artifact_bytes            # the .tflite; result["mcu"].report.validation.accuracy.agreement, ...
```

Everything runs the same pipeline as `edgebuild build` (the CLI is a thin layer over `build`), with the
same profiles, cache and output folders. `model` is a path or an in-memory Keras model (tf_keras or
Keras 3); in-memory models and arrays are written to a temporary folder first (a `.keras` archive and an
`.npz`, both byte-for-byte deterministic, so the build cache recognizes them) and read back exactly as the
CLI reads files: the artifacts are the bytes the CLI builds from the same model and data.

Failures raise the exceptions of `edgebuild.errors` (`DataError`, `ModelError`, `GateFailed`, ...), never
exit codes. An exception raised after targets were built carries the whole outcome as `exc.result` (a
`BuildResult`). With `gates=False` failed validation gates do not raise: they are in `passed` and
`failed_checks`. Importing this module does not import TensorFlow.
"""

# The package: forms (the argument forms: ModelLike, DataLike, Overrides), reports (Report and its parts),
# results (TargetBuild, BuildResult), building (build), artifacts (validate, bench, carray, resolve_profile),
# inputs (in-memory models and data written to a temporary folder) and rendering (progress, tables).

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgebuild.api.artifacts import bench, carray, resolve_profile, validate
from edgebuild.api.building import build
from edgebuild.api.forms import _override_strings as _override_strings
from edgebuild.api.inputs import _data_label as _data_label
from edgebuild.api.inputs import _Inputs as _Inputs
from edgebuild.api.inputs import _keras_inputs as _keras_inputs
from edgebuild.api.reports import (
    AccuracyReport,
    ArenaReport,
    ArtifactInfo,
    BenchmarkReport,
    Check,
    LatencyStats,
    Report,
    TensorSpec,
    ValidationReport,
)
from edgebuild.api.results import BuildResult, TargetBuild

# The argument forms: defined here, where their docstrings document them; the modules import them for
# type checking only.
ModelLike = str | os.PathLike[str] | Any
"""A model path (SavedModel folder, `.keras`, `.h5`) or an in-memory Keras model (tf_keras or Keras 3)."""

DataLike = str | os.PathLike[str] | np.ndarray | tuple[Any, ...] | list[Any] | dict[str, Any] | Any
"""A data path (`.npz`, `.npy`, image folder), a NumPy array of inputs, an `(x, y)` tuple, a dict
(`{"x": ..., "y": ...}` or `{input_name: ..., "y": ...}`), or a finite `tf.data.Dataset` of those, batched or not."""

Overrides = Mapping[str, Any] | Sequence[str] | None
"""Profile overrides: `{"quantization.io": "uint8", "benchmark.enabled": False}` (nested dicts work too) or
CLI-style strings `["quantization.io=uint8"]`."""

ArtifactLike = str | os.PathLike[str] | bytes | TargetBuild
"""A `.tflite` path, its bytes, or a `TargetBuild` (its artifact)."""

__all__ = [
    "AccuracyReport",
    "ArenaReport",
    "ArtifactInfo",
    "ArtifactLike",
    "BenchmarkReport",
    "BuildResult",
    "Check",
    "DataLike",
    "LatencyStats",
    "ModelLike",
    "Overrides",
    "Report",
    "TargetBuild",
    "TensorSpec",
    "ValidationReport",
    "bench",
    "build",
    "carray",
    "resolve_profile",
    "validate",
]
