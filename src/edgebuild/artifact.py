"""Read a `.tflite` flatbuffer into plain, typed data, without TensorFlow.

Every check, the report and the C code generator look at the artifact through
this one reader, so they all agree on what the file contains. It uses the
flatbuffer schema bindings that ship with LiteRT (`ai_edge_litert`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edgebuild.errors import ArtifactError

TFLITE_IDENTIFIER = b"TFL3"


def _enum_names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int
    constant_bytes: int  # size of the weight data stored in the file, 0 for activations

    @property
    def is_constant(self) -> bool:
        return self.constant_bytes > 0

    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.shape_signature)

    @property
    def num_elements(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def describe(self) -> dict[str, Any]:
        """The public description used in report.json (`artifact.inputs`/`outputs`)."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale[0] if len(self.scale) == 1 else list(self.scale) or None,
            "zero_point": self.zero_point[0] if len(self.zero_point) == 1 else list(self.zero_point) or None,
        }


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str  # builtin op name as in the schema (CONV_2D) or the custom code
    inputs: tuple[int, ...]  # tensor indices, -1 for an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    custom: bool = False


@dataclass(frozen=True)
class TfliteArtifact:
    """What a `.tflite` file holds: its first subgraph's ops and tensors."""

    size_bytes: int
    sha256: str
    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    input_indices: tuple[int, ...]
    output_indices: tuple[int, ...]
    subgraph_count: int
    signature_outputs: tuple[tuple[str, int], ...] = ()  # (signature output name, tensor index)
    signature_inputs: tuple[tuple[str, int], ...] = ()  # (signature input name, tensor index)
    operator_codes: tuple[tuple[str, bool], ...] = ()  # (op name, custom) of every subgraph, model-wide

    @property
    def inputs(self) -> list[TensorInfo]:
        return [self.tensors[i] for i in self.input_indices]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [self.tensors[i] for i in self.output_indices]

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.name] = counts.get(op.name, 0) + 1
        return dict(sorted(counts.items()))

    def tensor(self, index: int) -> TensorInfo | None:
        return self.tensors[index] if index >= 0 else None

    def weight_dtypes(self) -> dict[str, int]:
        """Bytes of constant data per dtype: shows float16 vs int8 vs float32 weights at a glance."""
        out: dict[str, int] = {}
        for t in self.tensors:
            if t.is_constant:
                out[t.dtype] = out.get(t.dtype, 0) + t.constant_bytes
        return out

    def function_output_order(self) -> list[int]:
        """Positions in `outputs` of the traced function's outputs 0..n-1.

        The converter may list outputs in another order than the model returns
        them; the signature names them `output_0`, `output_1`, ... in model order.
        """
        position = {tensor: i for i, tensor in enumerate(self.output_indices)}
        named = sorted(self.signature_outputs, key=lambda item: _natural_key(item[0]))
        order = [position[t] for _, t in named if t in position]
        return (
            order if sorted(order) == list(range(len(self.output_indices))) else list(range(len(self.output_indices)))
        )

    def input_signature_names(self) -> list[str]:
        """The signature's name of each input, in the artifact's input order ("" where it has none)."""
        names = {tensor: name for name, tensor in self.signature_inputs}
        return [names.get(i, "") for i in self.input_indices]

    @cached_property
    def dynamic_roots(self) -> dict[int, TensorInfo]:
        """Tensors where a dynamic (-1) dimension starts, keyed by index (computed once per artifact).

        Dynamic shapes spread from the inputs through every op; the rule checks report only where
        they start, so one cause gives one finding.
        """
        producer = {o: op for op in self.ops for o in op.outputs if o >= 0}
        roots: dict[int, TensorInfo] = {}
        for tensor in self.tensors:
            if not tensor.is_dynamic:
                continue
            op = producer.get(tensor.index)
            if op is None or not any(i >= 0 and self.tensors[i].is_dynamic for i in op.inputs):
                roots[tensor.index] = tensor
        return roots

    @cached_property
    def macs_per_op(self) -> tuple[int, ...]:
        return tuple(op_macs(self, op) for op in self.ops)

    @property
    def total_macs(self) -> int:
        return sum(self.macs_per_op)


def _natural_key(name: str) -> tuple[int | str, ...]:
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def op_macs(artifact: TfliteArtifact, op: OpInfo) -> int:
    """Multiply-accumulates of one op, counted from tensor shapes (0 for data movement)."""
    out = artifact.tensor(op.outputs[0]) if op.outputs else None
    weights = artifact.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    if out is None:
        return 0
    if op.name == "CONV_2D" and weights is not None:
        # weights: [out_c, kh, kw, in_c]; each output element needs kh*kw*in_c MACs
        return out.num_elements * int(np.prod(weights.shape[1:]))
    if op.name == "DEPTHWISE_CONV_2D" and weights is not None:
        # weights: [1, kh, kw, out_c]; each output element needs kh*kw MACs
        return out.num_elements * int(weights.shape[1] * weights.shape[2])
    if op.name == "FULLY_CONNECTED" and weights is not None:
        return out.num_elements * int(weights.shape[-1])
    if op.name == "TRANSPOSE_CONV" and weights is not None:
        inp = artifact.tensor(op.inputs[2])
        return (inp.num_elements if inp else 0) * int(np.prod(weights.shape[:3]))
    if op.name in {"ADD", "SUB", "MUL", "AVERAGE_POOL_2D", "MEAN", "MAX_POOL_2D"}:
        return out.num_elements
    return 0


class _SchemaNames(NamedTuple):
    """Enum value -> name tables of the flatbuffer schema."""

    tensor_types: dict[int, str]
    op_names: dict[int, str]
    activations: dict[int, str]
    paddings: dict[int, str]


def _schema() -> Any:
    """LiteRT's generated flatbuffer schema module (untyped)."""
    from ai_edge_litert import schema_py_generated as schema

    return schema


@cache
def _names() -> _SchemaNames:
    schema = _schema()
    return _SchemaNames(
        tensor_types={k: v.lower() for k, v in _enum_names(schema.TensorType).items()},
        op_names=_enum_names(schema.BuiltinOperator),
        activations=_enum_names(schema.ActivationFunctionType),
        paddings=_enum_names(schema.Padding),
    )


def _options_dict(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    names = _names()
    result: dict[str, Any] = {}
    for key, value in vars(options).items():
        if key == "fusedActivationFunction":
            value = names.activations.get(value, str(value))
        elif key == "padding":
            value = names.paddings.get(value, str(value))
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        result[key] = value
    return result


def read_artifact(path: Path | str) -> TfliteArtifact:
    """Parse a `.tflite` file; a clear ArtifactError for anything that is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"Cannot read {path}: {exc.strerror}. Check the path and its permissions.") from None
    return parse_artifact(data, source=str(path))


def parse_artifact(data: bytes, source: str = "<bytes>") -> TfliteArtifact:
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ArtifactError(
            f"{source} is not a TensorFlow Lite model: the file does not carry the 'TFL3' flatbuffer "
            "identifier. Pass the .tflite file that edgebuild or the TFLite converter wrote."
        )
    schema = _schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        subgraph = model.subgraphs[0]
        tensors = tuple(_tensor_info(i, t, model.buffers) for i, t in enumerate(subgraph.tensors or []))
        ops = tuple(_op_info(i, op, model.operatorCodes) for i, op in enumerate(subgraph.operators or []))
        inputs = tuple(int(i) for i in subgraph.inputs)
        outputs = tuple(int(i) for i in subgraph.outputs)
        for idx in inputs + outputs:
            tensors[idx]  # bounds check for truncated or corrupt files
    except Exception as exc:  # flatbuffers raises many kinds of errors on corrupt input
        raise ArtifactError(
            f"{source} is corrupt or truncated ({type(exc).__name__} while reading the flatbuffer). "
            "Rebuild it, or copy it again if it came over a network."
        ) from None
    return TfliteArtifact(
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        tensors=tensors,
        ops=ops,
        input_indices=inputs,
        output_indices=outputs,
        subgraph_count=len(model.subgraphs),
        signature_outputs=_signature_tensors(model, "outputs"),
        signature_inputs=_signature_tensors(model, "inputs"),
        operator_codes=tuple(_code_name(code) for code in model.operatorCodes or []),
    )


def _signature_tensors(model: Any, kind: str) -> tuple[tuple[str, int], ...]:
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == 0:
            return tuple(
                (t.name.decode() if isinstance(t.name, bytes) else str(t.name), int(t.tensorIndex))
                for t in getattr(signature, kind) or []
            )
    return ()


def _tensor_info(index: int, tensor: Any, buffers: list[Any]) -> TensorInfo:
    q = tensor.quantization
    scale = tuple(float(s) for s in (q.scale if q is not None and q.scale is not None else ()))
    zero_point = tuple(int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else ()))
    buffer = buffers[tensor.buffer] if buffers and tensor.buffer < len(buffers) else None
    constant_bytes = 0
    if buffer is not None:
        if buffer.data is not None:
            constant_bytes = len(buffer.data)
        elif getattr(buffer, "size", 0):
            constant_bytes = int(buffer.size)
    shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))
    signature = tuple(int(d) for d in tensor.shapeSignature) if tensor.shapeSignature is not None else shape
    name = tensor.name.decode() if isinstance(tensor.name, bytes) else (tensor.name or "")
    return TensorInfo(
        index=index,
        name=name,
        shape=shape,
        shape_signature=signature,
        dtype=_names().tensor_types.get(tensor.type, str(tensor.type)),
        scale=scale,
        zero_point=zero_point,
        quantized_dimension=int(q.quantizedDimension) if q is not None else 0,
        constant_bytes=constant_bytes,
    )


def _code_name(code: Any) -> tuple[str, bool]:
    """(name, custom) of one operator code: the builtin's schema name, or the custom op's own code."""
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    op_names = _names().op_names
    if code.customCode is not None and op_names.get(builtin) == "CUSTOM":
        return (code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)), True
    return op_names.get(builtin, f"BUILTIN_{builtin}"), False


def _op_info(index: int, op: Any, codes: list[Any]) -> OpInfo:
    code = codes[op.opcodeIndex]
    name, custom = _code_name(code)
    return OpInfo(
        index=index,
        name=name,
        inputs=tuple(int(i) for i in (op.inputs if op.inputs is not None else ())),
        outputs=tuple(int(i) for i in (op.outputs if op.outputs is not None else ())),
        options=_options_dict(op.builtinOptions),
        version=int(code.version),
        custom=custom,
    )
