"""Float data in, float data out: how every runtime adapter feeds and reads a `.tflite` model.

- inputs are quantized with the artifact's *own* input scale and zero point when
  the input tensor is int8/uint8/int16 (arrays that already have the input's
  integer dtype are passed through untouched);
- integer outputs that carry quantization parameters are dequantized to float32;
  float outputs come back as float32; plain integer/bool outputs (an argmax
  index, say) keep their dtype;
- the first axis of `x` is the sample axis; results are stacked over samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebuild.errors import DataError

QUANTIZED_INPUT_DTYPES = (np.int8, np.uint8, np.int16)

InputData = np.ndarray | Sequence[np.ndarray]


@dataclass(frozen=True)
class IOSpec:
    """What predict needs to know about one input or output tensor (runtime-neutral)."""

    name: str
    shape: tuple[int, ...]
    batch_dynamic: bool
    dtype: np.dtype
    scale: np.ndarray  # empty when not quantized
    zero_point: np.ndarray
    quantized_dimension: int

    @property
    def quantized(self) -> bool:
        return self.scale.size > 0 and bool(np.any(self.scale != 0))


def spec_from_details(detail: dict[str, Any], name: str | None = None, signature: Any = None) -> IOSpec:
    q = detail.get("quantization_parameters") or {}
    scale = np.asarray(q.get("scales", ()), dtype=np.float64).reshape(-1)
    zero_point = np.asarray(q.get("zero_points", ()), dtype=np.int64).reshape(-1)
    shape = tuple(int(d) for d in detail["shape"])
    sig = signature if signature is not None else detail.get("shape_signature")
    batch_dynamic = sig is not None and len(sig) > 0 and int(sig[0]) < 0
    return IOSpec(
        name=name if name is not None else str(detail.get("name", "")),
        shape=shape,
        batch_dynamic=batch_dynamic,
        dtype=np.dtype(detail["dtype"]),
        scale=scale,
        zero_point=zero_point,
        quantized_dimension=int(q.get("quantized_dimension", 0)),
    )


def broadcast_params(spec: IOSpec, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point shaped to broadcast against one batch (per-tensor or per-axis)."""
    if spec.scale.size <= 1:
        zp = spec.zero_point[0] if spec.zero_point.size else 0
        return spec.scale.reshape(()), np.asarray(zp).reshape(())
    shape = [1] * ndim
    shape[spec.quantized_dimension] = spec.scale.size
    zp = spec.zero_point if spec.zero_point.size == spec.scale.size else np.zeros_like(spec.scale, np.int64)
    return spec.scale.reshape(shape), zp.reshape(shape)


def to_input_dtype(x: np.ndarray, spec: IOSpec) -> np.ndarray:
    """Float data → the tensor's dtype, quantizing with the tensor's own parameters."""
    if x.dtype == spec.dtype:
        return np.ascontiguousarray(x)
    if spec.dtype.type in QUANTIZED_INPUT_DTYPES and spec.quantized:
        scale, zp = broadcast_params(spec, x.ndim)
        info = np.iinfo(spec.dtype)
        q = np.round(x.astype(np.float64) / scale) + zp
        quantized: np.ndarray = np.clip(q, info.min, info.max).astype(spec.dtype)
        return quantized
    if np.issubdtype(spec.dtype, np.integer):
        info = np.iinfo(spec.dtype)
        rounded: np.ndarray = np.clip(np.round(x), info.min, info.max).astype(spec.dtype)
        return rounded
    return np.ascontiguousarray(x, dtype=spec.dtype)


def from_output(y: np.ndarray, spec: IOSpec) -> np.ndarray:
    if np.issubdtype(y.dtype, np.integer) and spec.quantized:
        scale, zp = broadcast_params(spec, y.ndim)
        dequantized: np.ndarray = ((y.astype(np.float64) - zp) * scale).astype(np.float32)
        return dequantized
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32, copy=False)
    return y


def as_input_list(x: InputData, specs: Sequence[IOSpec], source: str) -> list[np.ndarray]:
    """Normalize `x` to one array per model input, each (N, *sample_shape), checking shapes."""
    single = isinstance(x, np.ndarray) or np.isscalar(x)
    arrays = [np.asarray(x)] if single else [np.asarray(a) for a in x]
    if len(arrays) != len(specs):
        raise DataError(
            f"{source} takes {len(specs)} input(s) "
            f"({', '.join(s.name or '?' for s in specs)}) but {len(arrays)} array(s) were given. "
            "Pass one array per model input, in the model's input order."
        )
    n = None
    for arr, spec in zip(arrays, specs, strict=True):
        expected = ("N", *spec.shape[1:])
        if arr.ndim != len(spec.shape) or tuple(arr.shape[1:]) != tuple(spec.shape[1:]):
            raise DataError(
                f"Input '{spec.name}' of {source} expects data of shape {fmt_shape(expected)} "
                f"(N samples first) but got {fmt_shape(arr.shape)}. "
                "Reshape or resize the data to the model's input shape."
            )
        if n is not None and arr.shape[0] != n:
            raise DataError(
                f"The inputs for {source} disagree on the number of samples ({n} vs {arr.shape[0]}). "
                "Pass the same number of samples for every input."
            )
        n = arr.shape[0]
    return arrays


def fmt_shape(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def stack_chunks(chunks: list[list[np.ndarray]], n_outputs: int) -> list[np.ndarray]:
    return [np.concatenate([c[i] for c in chunks], axis=0) for i in range(n_outputs)]
