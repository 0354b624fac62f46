"""Microcontroller rules: TFLite Micro kernels of the pinned tflite-micro, int8, static shapes.

The kernel list is measured from the installed tflite-micro wheel by
`gen_mcu_ops.py` (see there); this module only reads it.
"""

from __future__ import annotations

from collections.abc import Iterator

from edgebuild.artifact import OpInfo, TfliteArtifact

from .findings import Finding, RuleReport
from .rules import (
    Violation,
    dynamic_shape_violations,
    get,
    is_boundary_quantize,
    only_batch_dynamic,
    op_tensors,
    rule,
)
from .tables import load_table

CONSTANT_INTS = {"int32", "int64"}  # biases (int32; int64 for 16x8) and shape/axis operands
INDEX_TYPES = {"int32", "bool"}     # computed indices, shapes and masks (ARG_MAX, SHAPE, comparisons)
IO_ONLY = {"uint8"}                 # TFLM converts uint8 only in QUANTIZE/DEQUANTIZE


@rule("mcu.kernel", fix="Replace the op with one TFLite Micro implements (see `edgebuild targets show mcu`), "
      "or register your own kernel for it in the firmware.")
def kernel(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Every op must have a kernel in the pinned TFLite Micro build."""
    if op.custom or op.name not in load_table("mcu"):
        yield Violation(f"TFLite Micro has no kernel for {op.name}.")


@rule("mcu.int8_tensors", fix="Convert with full-integer int8 quantization and int8 model I/O "
      "(quantization.scheme = \"int8\", quantization.io = \"int8\").")
def int8_tensors(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """MCU models must be int8: activations and weights int8, biases int32 (int64 for 16x8), no floating point."""
    for t in op_tensors(artifact, op):
        if t.dtype == "int8":
            continue
        if t.is_constant and t.dtype in CONSTANT_INTS:
            continue
        if not t.is_constant and t.dtype in INDEX_TYPES:
            continue
        if t.dtype in IO_ONLY and op.name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        if t.dtype == "int16":
            continue  # reported by mcu.int16_activations
        yield Violation(f"Tensor '{t.name}' is {t.dtype}.", t)
        return


@rule("mcu.int16_activations", fix="Use int8 activations unless you checked that every kernel here supports 16x8.")
def int16_activations(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """int16 (16x8) tensors run on only a subset of TFLite Micro kernels."""
    for t in op_tensors(artifact, op):
        if t.dtype == "int16":
            yield Violation(f"Tensor '{t.name}' is int16.", t)
            return


@rule("mcu.static_shape", fix="Give the model a fixed input shape with batch 1 "
      "(e.g. tf_keras Input(shape=..., batch_size=1)) before converting.")
def static_shape(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """TFLite Micro plans its arena ahead of time, so tensor shapes must be static."""
    yield from dynamic_shape_violations(artifact, op)


def check(artifact: TfliteArtifact) -> RuleReport:
    """Run every MCU rule on every op."""
    findings: list[Finding] = []
    seen: set[tuple[str, str | None]] = set()

    def add(f: Finding) -> None:
        if (f.rule, f.tensor, f.op_index if f.tensor is None else None) not in seen:
            seen.add((f.rule, f.tensor, f.op_index if f.tensor is None else None))
            findings.append(f)

    for op in artifact.ops:
        for v in kernel(artifact, op):
            add(get("mcu.kernel").finding(op, v, "error"))
        for v in int8_tensors(artifact, op):
            if is_boundary_quantize(artifact, op):
                add(get("mcu.int8_tensors").finding(op, Violation(
                    v.detail + " It is float model I/O: TFLM can run it, but the firmware then feeds floats "
                    "and links float kernels.", v.tensor), "warning"))
            else:
                add(get("mcu.int8_tensors").finding(op, v, "error"))
        for v in int16_activations(artifact, op):
            add(get("mcu.int16_activations").finding(op, v, "warning"))
        for v in static_shape(artifact, op):
            # a -1 batch whose file shape is 1 still runs (TFLM reads the shape, not the signature)
            severity = "warning" if v.tensor is not None and only_batch_dynamic(v.tensor) else "error"
            add(get("mcu.static_shape").finding(op, v, severity))
    return RuleReport("mcu", load_table("mcu").runtime, findings, {"kernels": len(load_table("mcu").ops)})
