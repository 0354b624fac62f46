"""Model inputs as one array (single-input models) or one named array per input (multi-input models).

A multi-input model's data travels through a build as a dict keyed by the model's input names, in the
model's input order. Names, not positions, tie an array to an input: the TFLite converter lists a
SavedModel's inputs in its own order (its signature sorts them by name), so each consumer maps the names
onto its own order at the boundary: the converter's representative dataset yields the dict itself (the
converter matches signature keys), and the runtimes get a list in the artifact's order (`for_artifact`).
Imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgebuild.artifact import TfliteArtifact

Samples = np.ndarray | dict[str, np.ndarray]


def count(x: Samples) -> int:
    """Number of samples (the first axis of every input)."""
    if isinstance(x, dict):
        return len(next(iter(x.values())))
    return len(x)


def take(x: Samples, index: np.ndarray | slice) -> Samples:
    """The same samples of every input."""
    if isinstance(x, dict):
        return {name: array[index] for name, array in x.items()}
    return x[index]


def first_input(x: Samples) -> np.ndarray:
    """The model's first input (the only one of a single-input model)."""
    return next(iter(x.values())) if isinstance(x, dict) else x


def as_float32(x: Samples) -> Samples:
    if isinstance(x, dict):
        return {name: array.astype(np.float32, copy=False) for name, array in x.items()}
    return x.astype(np.float32, copy=False)


def for_artifact(x: Samples, artifact: TfliteArtifact) -> np.ndarray | list[np.ndarray]:
    """Arrays in the artifact's input order, matched by signature input name (positions only without names)."""
    if not isinstance(x, dict):
        return x
    names = artifact.input_signature_names()
    if sorted(names) == sorted(x):
        return [x[name] for name in names]
    return list(x.values())


def single(x: Samples, what: str) -> np.ndarray:
    """`x` as one array, for passes that feed one input; UnsupportedError naming `what` for several inputs."""
    if isinstance(x, dict):
        from edgebuild.errors import UnsupportedError

        raise UnsupportedError(
            f"{what} supports single-input models; this model has {len(x)} inputs ({', '.join(x)}). "
            "Build it with plain post-training quantization instead."
        )
    return x
