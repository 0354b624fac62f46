"""LiteRT (`ai_edge_litert`), the host runtime; `tflite_runtime` is accepted as a fallback where it imports.

The default kernels (XNNPACK / optimized) are what a phone runs; the reference kernels
(`reference_kernels=True`) are what TensorFlow Lite Micro's arithmetic is compared with.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.errors import ArtifactError
from edgebuild.native_output import capture_native
from edgebuild.runtime.io import InputData, as_input_list, from_output, spec_from_details, stack_chunks, to_input_dtype


def _load_interpreter_class() -> tuple[type, str, str]:
    """(Interpreter class, distribution name, version): LiteRT first, tflite_runtime as fallback."""
    from importlib import metadata

    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert", metadata.version("ai-edge-litert")
    except ImportError as litert_exc:
        try:
            from tflite_runtime.interpreter import Interpreter
        except Exception:  # tflite_runtime under NumPy 2 raises AttributeError on import
            raise ArtifactError(
                f"No TensorFlow Lite runtime is available: ai_edge_litert does not import ({litert_exc}) "
                "and tflite_runtime does not either. Install one with `pip install ai-edge-litert`."
            ) from None
        try:
            version = metadata.version("tflite-runtime")
        except metadata.PackageNotFoundError:
            version = "unknown"
        return Interpreter, "tflite-runtime", version


def _reference_resolver(runtime_name: str) -> Any:
    """OpResolverType.BUILTIN_REF of the loaded runtime (LiteRT, or tflite_runtime as the fallback)."""
    try:
        if runtime_name == "ai-edge-litert":
            from ai_edge_litert.interpreter import OpResolverType
        else:
            from tflite_runtime.interpreter import OpResolverType
    except ImportError:
        raise ArtifactError(
            f"{runtime_name} has no reference-kernel resolver (OpResolverType.BUILTIN_REF). "
            "Install ai-edge-litert (`pip install ai-edge-litert`)."
        ) from None
    return OpResolverType.BUILTIN_REF


class LiteRTModel:
    """A `.tflite` artifact loaded in LiteRT (XNNPACK is applied by default on CPU).

    `model` is a path or the model's bytes. Loading failures raise ArtifactError;
    tensors are allocated here, so a model that LiteRT cannot prepare fails at load.
    `load_time_ms` is the wall time of construction + `allocate_tensors()`.
    `reference_kernels=True` runs TFLite's reference kernels (`OpResolverType.BUILTIN_REF`,
    no XNNPACK): slow, but the arithmetic TFLite Micro's reference kernels implement, so the
    two agree within a few output steps where the optimized kernels differ by tens.
    """

    def __init__(self, model: Path | str | bytes, num_threads: int = 1, reference_kernels: bool = False):
        Interpreter, self.runtime_name, self.runtime_version = _load_interpreter_class()
        self.reference_kernels = reference_kernels
        options: dict[str, Any] = {}
        if reference_kernels:
            options["experimental_op_resolver_type"] = _reference_resolver(self.runtime_name)
        if isinstance(model, (bytes, bytearray, memoryview)):
            self.source = "<model bytes>"
            content = bytes(model)
        else:
            self.source = str(model)
            try:
                content = Path(model).read_bytes()
            except OSError as exc:
                raise ArtifactError(
                    f"Cannot read {self.source}: {exc.strerror}. Check the path and its permissions."
                ) from None
        self.size_bytes = len(content)
        self.num_threads = num_threads
        try:
            with capture_native():  # LiteRT announces its XNNPACK delegate on fd 2
                start = time.perf_counter_ns()
                self.interpreter = Interpreter(model_content=content, num_threads=num_threads, **options)
                self.interpreter.allocate_tensors()
                elapsed_ns = time.perf_counter_ns() - start
        except (ValueError, RuntimeError) as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise ArtifactError(
                f"{self.source} cannot be loaded by {self.runtime_name} {self.runtime_version}: {detail}. "
                "If the file is truncated or corrupt, rebuild it or copy it again; if it uses ops this "
                "runtime does not know (custom ops, or ops from a newer converter), rebuild it with "
                "builtin ops only or upgrade the runtime."
            ) from None
        self.load_time_ms = elapsed_ns / 1e6
        self._in_specs = [spec_from_details(d) for d in self.input_details]
        self._out_specs = [spec_from_details(d) for d in self.output_details]

    def __repr__(self) -> str:
        kernels = ", reference_kernels=True" if self.reference_kernels else ""
        return f"LiteRTModel({self.source!r}, num_threads={self.num_threads}{kernels}, runtime={self.runtime_name})"

    @property
    def input_details(self) -> list[dict[str, Any]]:
        details: list[dict[str, Any]] = self.interpreter.get_input_details()
        return details

    @property
    def output_details(self) -> list[dict[str, Any]]:
        details: list[dict[str, Any]] = self.interpreter.get_output_details()
        return details

    @property
    def uses_xnnpack(self) -> bool:
        """True when a delegate (XNNPACK, LiteRT's CPU default) took over part of the graph."""
        try:
            return any(op.get("op_name") == "DELEGATE" for op in self.interpreter._get_ops_details())
        except Exception:  # private API; absent in some tflite_runtime builds
            return False

    def prepare_inputs(self, x: InputData) -> list[np.ndarray]:
        """Check shapes and convert float data to each input's dtype (quantizing where needed).

        Returns one array per input with the sample axis first.
        """
        arrays = as_input_list(x, self._in_specs, self.source)
        return [to_input_dtype(a, s) for a, s in zip(arrays, self._in_specs, strict=True)]

    def predict(self, x: InputData, batch_size: int = 1) -> list[np.ndarray]:
        """Run float inputs through the artifact; one float32 array per output, stacked over samples.

        `x` is an array (single-input model) or one array per input, samples first.
        Inputs are quantized with the artifact's own scale/zero point when the input
        tensor is int8/uint8/int16; quantized integer outputs are dequantized.

        Batching: when the model's batch dimension is fixed, samples are fed in
        chunks of that size (one at a time for the usual batch 1; a short last chunk
        is zero-padded and the padding dropped). When it is dynamic and
        `batch_size > 1`, the inputs are resized to `batch_size` and fed in chunks.
        """
        arrays = self.prepare_inputs(x)
        n = arrays[0].shape[0]
        if n == 0:
            return [np.zeros((0, *s.shape[1:]), np.float32) for s in self._out_specs]
        fixed = self._in_specs[0].shape[0] if self._in_specs[0].shape else 1
        dynamic = all(s.batch_dynamic for s in self._in_specs)
        chunk = batch_size if (dynamic and batch_size > 1) else max(fixed, 1)
        details = self.input_details
        resized = False
        if chunk != fixed:
            for d, s in zip(details, self._in_specs, strict=True):
                self.interpreter.resize_tensor_input(d["index"], [chunk, *s.shape[1:]])
            self.interpreter.allocate_tensors()
            resized = True
        try:
            chunks = []
            out_details = self.output_details
            for start in range(0, n, chunk):
                count = min(chunk, n - start)
                for d, a in zip(details, arrays, strict=True):
                    part = a[start : start + count]
                    if count < chunk:
                        pad = np.zeros((chunk - count, *part.shape[1:]), part.dtype)
                        part = np.concatenate([part, pad], axis=0)
                    self.interpreter.set_tensor(d["index"], part)
                # Samples are independent: a fused LSTM keeps its state in variable tensors across invokes
                self.interpreter.reset_all_variables()
                self.interpreter.invoke()
                chunks.append(
                    [
                        from_output(self.interpreter.get_tensor(o["index"])[:count], s)
                        for o, s in zip(out_details, self._out_specs, strict=True)
                    ]
                )
        finally:
            if resized:
                for d, s in zip(details, self._in_specs, strict=True):
                    self.interpreter.resize_tensor_input(d["index"], list(s.shape))
                self.interpreter.allocate_tensors()
        return stack_chunks(chunks, len(self._out_specs))
