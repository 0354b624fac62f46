"""Microcontroller rules: TFLite Micro kernels of the pinned tflite-micro, int8, static shapes.

The kernel lists (builtin ops, and the custom ops TFLM registers by name, such
as its signal library's SignalWindow) are measured from the installed
tflite-micro wheel by `gen_mcu_ops.py` (see there); this module only reads them.
"""

from __future__ import annotations

from collections.abc import Iterator

from edgebuild.artifact import OpInfo, TensorInfo, TfliteArtifact

from .findings import Finding, RuleReport, Severity
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
INDEX_TYPES = {"int32", "bool"}  # computed indices, shapes and masks (ARG_MAX, SHAPE, comparisons)
IO_ONLY = {"uint8"}  # TFLM converts uint8 only in QUANTIZE/DEQUANTIZE

# Tensor types the kernels of TFLM's custom ops work in, read from their sources
# (signal/micro/kernels/*.cc and kernels/detection_postprocess.cc of TFLM 90b983c:
# the TF_LITE_ENSURE_TYPES_EQ checks and type switches). A tensor of one of these
# types read or written by such an op is what the kernel needs, not a conversion
# that forgot to quantize: the signal audio front end of micro_speech computes in
# int16/uint32/uint64 by design. Float types here are allowed with a warning.
CUSTOM_KERNEL_DTYPES: dict[str, frozenset[str]] = {
    "SignalDelay": frozenset({"int16"}),
    "SignalEnergy": frozenset({"int16", "uint32"}),
    "SignalFftAutoScale": frozenset({"int16", "int32"}),
    "SignalFilterBank": frozenset({"int16", "uint32", "uint64"}),
    "SignalFilterBankLog": frozenset({"int16", "uint32"}),
    "SignalFilterBankSpectralSubtraction": frozenset({"uint32"}),
    "SignalFilterBankSquareRoot": frozenset({"int32", "uint32", "uint64"}),
    "SignalFramer": frozenset({"bool", "int16"}),
    "SignalIrfft": frozenset({"float32", "int16", "int32"}),
    "SignalOverlapAdd": frozenset({"float32", "int16"}),
    "SignalPCAN": frozenset({"int16", "uint32"}),
    "SignalRfft": frozenset({"float32", "int16", "int32"}),
    "SignalStacker": frozenset({"bool", "int16"}),
    "SignalWindow": frozenset({"int16"}),
    "TFLite_Detection_PostProcess": frozenset({"float32"}),  # decoded boxes, classes and scores
}


def custom_kernel_for(artifact: TfliteArtifact, tensor: TensorInfo) -> OpInfo | None:
    """A TFLM custom op reading or writing `tensor` whose kernel works in the tensor's type, if any.

    Such a tensor is typed by that kernel: e.g. the uint32 energy SignalEnergy
    writes, and the CAST back to uint32 that feeds SignalFilterBank.
    """
    table = load_table("mcu")
    for op in artifact.ops:
        if (
            op.custom
            and tensor.dtype in CUSTOM_KERNEL_DTYPES.get(op.name, ())
            and table.has_kernel(op.name, custom=True)
            and tensor.index in (*op.inputs, *op.outputs)
        ):
            return op
    return None


@rule(
    "mcu.kernel",
    fix="Replace the op with one TFLite Micro implements (see `edgebuild targets show mcu`), "
    "or register your own kernel for it in the firmware.",
)
def kernel(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Every op must have a kernel in the pinned TFLite Micro build."""
    table = load_table("mcu")
    if op.custom and not table.has_kernel(op.name, custom=True):
        known = sorted(table.custom_ops)
        yield Violation(
            f"TFLite Micro has no kernel for the custom op '{op.name}': it registers only "
            f"{len(known)} custom ops of its own by name ({', '.join(known[:3])}, ...)."
        )
    elif not op.custom and op.name not in table:
        yield Violation(f"TFLite Micro has no kernel for {op.name}.")


@rule(
    "mcu.int8_tensors",
    fix="Convert with full-integer int8 quantization and int8 model I/O "
    '(quantization.scheme = "int8", quantization.io = "int8").',
)
def int8_tensors(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """MCU models must be int8: activations and weights int8, biases int32 (int64 for 16x8), no floating point.

    Tensors of the types a TFLM custom kernel works in (the signal library's
    int16/uint32/uint64 audio front end) are that kernel's, and allowed.
    """
    for t in op_tensors(artifact, op):
        if t.dtype == "int8" or t.dtype == "resource":  # a VAR_HANDLE's handle: the variable's own type shows
            continue  # on the READ_VARIABLE / ASSIGN_VARIABLE tensors, checked like any other
        if t.is_constant and t.dtype in CONSTANT_INTS:
            continue
        if not t.is_constant and t.dtype in INDEX_TYPES:
            continue
        if t.dtype in IO_ONLY and op.name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        if t.dtype == "int16":
            continue  # reported by mcu.int16_activations
        owner = custom_kernel_for(artifact, t)
        if owner is not None and not t.dtype.startswith("float"):
            continue
        detail = f"Tensor '{t.name}' is {t.dtype}."
        if owner is not None:
            detail += (
                f" {owner.name} (op #{owner.index}) works in {t.dtype}: TFLM runs it, "
                "but the firmware then links float kernels."
            )
        yield Violation(detail, t)
        return


@rule("mcu.int16_activations", fix="Use int8 activations unless you checked that every kernel here supports 16x8.")
def int16_activations(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """int16 (16x8) tensors run on only a subset of TFLite Micro kernels.

    An int8 UNIDIRECTIONAL_SEQUENCE_LSTM's int16 cell state and intermediates are what
    TFLite Micro's int8 LSTM kernel (8x8_16) expects, so they are not flagged.
    """
    if op.name == "UNIDIRECTIONAL_SEQUENCE_LSTM" and _int8_activations(artifact, op):
        return
    for t in op_tensors(artifact, op):
        if t.dtype == "int16" and custom_kernel_for(artifact, t) is None:
            yield Violation(f"Tensor '{t.name}' is int16.", t)
            return


def _int8_activations(artifact: TfliteArtifact, op: OpInfo) -> bool:
    """The op reads and writes int8 activations (its first input and output), whatever its internal state."""
    ends = [
        artifact.tensor(op.inputs[0]) if op.inputs else None,
        artifact.tensor(op.outputs[0]) if op.outputs else None,
    ]
    return all(t is not None and t.dtype == "int8" for t in ends)


@rule(
    "mcu.static_shape",
    fix="Give the model a fixed input shape with batch 1 "
    "(e.g. tf_keras Input(shape=..., batch_size=1)) before converting.",
)
def static_shape(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """TFLite Micro plans its arena ahead of time, so tensor shapes must be static."""
    yield from dynamic_shape_violations(artifact, op)


def check(artifact: TfliteArtifact) -> RuleReport:
    """Run every MCU rule on every op."""
    findings: list[Finding] = []
    seen: set[tuple[str, str | None, int | None]] = set()

    def add(f: Finding) -> None:
        if (f.rule, f.tensor, f.op_index if f.tensor is None else None) not in seen:
            seen.add((f.rule, f.tensor, f.op_index if f.tensor is None else None))
            findings.append(f)

    for op in artifact.ops:
        for v in kernel(artifact, op):
            add(get("mcu.kernel").finding(op, v, "error"))
        for v in int8_tensors(artifact, op):
            if v.tensor is not None and custom_kernel_for(artifact, v.tensor) is not None:
                add(get("mcu.int8_tensors").finding(op, v, "warning"))  # a float custom kernel (e.g. float Rfft)
            elif is_boundary_quantize(artifact, op):
                add(
                    get("mcu.int8_tensors").finding(
                        op,
                        Violation(
                            v.detail + " It is float model I/O: TFLM can run it, but the firmware then feeds floats "
                            "and links float kernels.",
                            v.tensor,
                        ),
                        "warning",
                    )
                )
            else:
                add(get("mcu.int8_tensors").finding(op, v, "error"))
        for v in int16_activations(artifact, op):
            add(get("mcu.int16_activations").finding(op, v, "warning"))
        for v in static_shape(artifact, op):
            # a -1 batch whose file shape is 1 still runs (TFLM reads the shape, not the signature)
            severity: Severity = "warning" if v.tensor is not None and only_batch_dynamic(v.tensor) else "error"
            add(get("mcu.static_shape").finding(op, v, severity))
    table = load_table("mcu")
    extra = {"kernels": len(table.ops), "custom_kernels": len(table.custom_ops)}
    return RuleReport("mcu", table.runtime, findings, extra)
