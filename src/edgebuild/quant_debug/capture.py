"""Run `.tflite` models in LiteRT with every intermediate tensor kept, and read their graphs.

`experimental_preserve_all_tensors=True` stops LiteRT from reusing an intermediate tensor's memory, so
after `invoke()` each one still holds its value. XNNPACK is left out
(`BUILTIN_WITHOUT_DEFAULT_DELEGATES`): a delegated subgraph keeps its intermediates to itself. The
kernels are LiteRT's optimized builtin ones, so a sample costs about what validation costs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebuild.native_output import capture_native
from edgebuild.runtime.io import IOSpec, as_input_list, from_output, spec_from_details, to_input_dtype


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int

    @property
    def scale(self) -> float | None:
        """The per-tensor scale (activations are always per-tensor in TFLite); None when float."""
        return float(self.scales[0]) if len(self.scales) == 1 and self.scales[0] != 0 else None

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if self.zero_points else 0

    @property
    def quantized(self) -> bool:
        return bool(self.scales) and np.issubdtype(self.dtype, np.integer)

    def float_range(self) -> tuple[float, float] | None:
        """The float values an int8/int16/uint8 tensor can represent with its scale and zero point."""
        if self.scale is None or not np.issubdtype(self.dtype, np.integer):
            return None
        info = np.iinfo(self.dtype)
        return (info.min - self.zero_point) * self.scale, (info.max - self.zero_point) * self.scale

    def dequantize(self, value: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return np.asarray(value, np.float32)
        if len(self.scales) == 1:
            return (value.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scales[0])
        scales = np.asarray(self.scales, np.float64)
        zps = np.asarray(self.zero_points or (0,) * len(self.scales), np.float64)
        shape = [1] * value.ndim
        shape[self.quantized_dimension] = scales.size
        return ((value.astype(np.float64) - zps.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


@dataclass(frozen=True)
class Op:
    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


class KeptModel:
    """One model loaded in LiteRT with intermediate tensors kept, plus its graph."""

    def __init__(self, blob: bytes, keep_all: bool = True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        with capture_native(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
            self.interpreter = Interpreter(
                model_content=blob,
                experimental_preserve_all_tensors=keep_all,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            self.interpreter.allocate_tensors()
        self.tensors: dict[int, Tensor] = {}
        for d in self.interpreter.get_tensor_details():
            q = d.get("quantization_parameters") or {}
            self.tensors[d["index"]] = Tensor(
                index=int(d["index"]),
                name=str(d["name"]),
                dtype=np.dtype(d["dtype"]),
                shape=tuple(int(s) for s in d["shape"]),
                scales=tuple(float(s) for s in q.get("scales", ())),
                zero_points=tuple(int(z) for z in q.get("zero_points", ())),
                quantized_dimension=int(q.get("quantized_dimension", 0)),
            )
        self.ops = [
            Op(
                int(o["index"]),
                str(o["op_name"]),
                tuple(int(i) for i in o["inputs"]),
                tuple(int(i) for i in o["outputs"]),
            )
            for o in self.interpreter._get_ops_details()
        ]
        self.input_details = self.interpreter.get_input_details()
        self.output_details = self.interpreter.get_output_details()
        self.in_specs: list[IOSpec] = [spec_from_details(d) for d in self.input_details]
        self.out_specs: list[IOSpec] = [spec_from_details(d) for d in self.output_details]
        produced = {o for op in self.ops for o in op.outputs}
        inputs = {d["index"] for d in self.input_details}
        self.constant_indices = {
            t for op in self.ops for t in op.inputs if t >= 0 and t not in produced and t not in inputs
        }
        self.by_name = {t.name: t for t in self.tensors.values()}

    def run(self, inputs: list[np.ndarray]) -> None:
        """Invoke on one sample (each array with the batch axis), converting float data to the input dtypes."""
        for detail, spec, value in zip(self.input_details, self.in_specs, inputs, strict=True):
            self.interpreter.set_tensor(detail["index"], to_input_dtype(value, spec))
        self.interpreter.reset_all_variables()  # independent samples (a fused LSTM's state is a variable tensor)
        self.interpreter.invoke()

    def value(self, index: int) -> np.ndarray:
        return np.asarray(self.interpreter.get_tensor(index))

    def outputs(self) -> list[np.ndarray]:
        return [
            from_output(self.value(d["index"]), s) for d, s in zip(self.output_details, self.out_specs, strict=True)
        ]

    def producer(self) -> dict[int, Op]:
        return {t: op for op in self.ops for t in op.outputs}

    def consumers(self) -> dict[int, list[Op]]:
        out: dict[int, list[Op]] = {}
        for op in self.ops:
            for t in op.inputs:
                if t >= 0:
                    out.setdefault(t, []).append(op)
        return out


def split_samples(x: Any, specs: list[IOSpec], source: str) -> tuple[list[np.ndarray], int]:
    """Normalize validation data to one array per model input; returns the arrays and the sample count."""
    arrays = as_input_list(x, specs, source)
    return arrays, int(arrays[0].shape[0])


def sample_at(arrays: list[np.ndarray], i: int, batch: int) -> list[np.ndarray]:
    """Sample i (or the batch starting at it) of each input, with the batch axis kept."""
    return [a[i : i + batch] for a in arrays]


def constants(blob: bytes) -> dict[str, np.ndarray]:
    """Every constant tensor (weights, biases, shapes) of a model by name, read through LiteRT."""
    model = KeptModel(blob, keep_all=False)
    out = {}
    for index in model.constant_indices:
        tensor = model.tensors[index]
        try:
            out[tensor.name] = np.array(model.value(index))
        except ValueError:  # a tensor LiteRT does not hand out (no data)
            continue
    return out
