"""Edge TPU rules: what edgetpu_compiler maps, and where it stops.

The compiler maps ops to the Edge TPU only up to the first op it cannot map;
that op and everything after it run on the CPU. So the report names that first
op (index and name) and the share of ops and MACs that would map. Tensor rules
(8-bit, static shapes) are errors on their own; an unsupported op is an error
only where it stops the mapping, later ones are warnings -- except custom ops
only TensorFlow Lite Micro implements (its signal ops), which the CPU cannot
run either.
"""

from __future__ import annotations

from collections.abc import Iterator

from edgebuild.artifact import OpInfo, TfliteArtifact

from .findings import Finding, RuleReport
from .rules import (
    Violation,
    dynamic_shape_violations,
    first_input,
    first_output,
    get,
    is_boundary_quantize,
    op_tensors,
    rule,
)
from .tables import load_table, tflm_only_custom_op

DEFAULT_RUNTIME = 14
EIGHT_BIT = {"int8", "uint8"}
CONSTANT_INTS = {"int32", "int64"}  # biases and shape/axis/padding operands
LSTM_OPS = {"UNIDIRECTIONAL_SEQUENCE_LSTM"}


# ---- tensor rules (every op) -------------------------------------------------------


@rule(
    "edgetpu.int8_tensors",
    fix="Convert with full-integer int8 quantization "
    '(quantization.scheme = "int8" with a representative dataset) so every activation and weight is 8-bit.',
)
def int8_tensors(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Edge TPU tensors must be 8-bit integers (int8/uint8); only constant biases and shape operands may be int32.

    A full-integer UNIDIRECTIONAL_SEQUENCE_LSTM keeps its cell state and gate
    intermediates in int16 by TFLite's quantization spec (8x8_16): those are the op's own.
    """
    lstm = op.name in LSTM_OPS
    for t in op_tensors(artifact, op):
        ok = t.dtype in EIGHT_BIT or (t.is_constant and t.dtype in CONSTANT_INTS) or (lstm and t.dtype == "int16")
        if not ok:
            yield Violation(f"Tensor '{t.name}' is {t.dtype}.", t)
            return  # one per op: the op cannot map either way


@rule(
    "edgetpu.static_shape",
    fix="Give the model a fixed input shape with batch 1 "
    "(e.g. tf_keras Input(shape=..., batch_size=1)) before converting.",
)
def static_shape(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Edge TPU tensor shapes must be fixed at compile time (no dynamic dimensions)."""
    yield from dynamic_shape_violations(artifact, op)


@rule(
    "edgetpu.inner_dims",
    fix="Use batch 1 and keep at most 3 dimensions above 1 (e.g. reshape [N,H,W,C] work into [1,H,W,C]).",
)
def inner_dims(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Edge TPU activations may have more than 3 dimensions only if all but the 3 innermost are 1 (so batch 1).

    Weights are exempt: a conv filter is [out, kh, kw, in] by layout.
    """
    for t in op_tensors(artifact, op):
        if not t.is_constant and len(t.shape) > 3 and any(d > 1 for d in t.shape[:-3]):
            yield Violation(f"Tensor '{t.name}' has shape {list(t.shape)}.", t)
            return


TENSOR_RULES = ("edgetpu.int8_tensors", "edgetpu.static_shape", "edgetpu.inner_dims")


# ---- op support and per-op limits --------------------------------------------------


@rule(
    "edgetpu.supported_op",
    fix="Replace the op with one on the Edge TPU list, move it after the "
    "last mapped op (e.g. into post-processing), or accept that it and every later op run on the CPU.",
)
def supported_op(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """The op must be one the Edge TPU supports (Coral's supported-operations table)."""
    table = load_table("edgetpu")
    entry = table.ops.get(op.name)
    if op.custom and tflm_only_custom_op(op.name):
        yield Violation(
            f"{op.name} is a TensorFlow Lite Micro custom op: neither the Edge TPU nor LiteRT on the "
            "device CPU has a kernel for it, so the model cannot run on an Edge TPU system at all."
        )
    elif entry is None or op.custom:
        yield Violation(f"{op.name} is not an Edge TPU operation.")


@rule(
    "edgetpu.no_fused_activation",
    fix="Remove the activation fused into the op (apply it as a separate layer before the op instead, or drop it).",
)
def no_fused_activation(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Pooling and concatenation ops on the Edge TPU cannot have a fused activation function."""
    act = op.options.get("fusedActivationFunction", "NONE")
    if act not in ("NONE", 0, None):
        yield Violation(f"It has fused activation {act}.", first_output(artifact, op))


@rule("edgetpu.equal_dilation", fix="Use the same dilation rate for height and width (dilation_rate=(d, d)).")
def equal_dilation(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Convolutions on the Edge TPU must use the same dilation in x and y."""
    h = op.options.get("dilationHFactor", 1)
    w = op.options.get("dilationWFactor", 1)
    if h != w:
        yield Violation(f"Dilation is {h} (height) by {w} (width).", first_output(artifact, op))


@rule("edgetpu.fc_default_weights", fix="Convert without shuffled or sparse fully-connected weight formats.")
def fc_default_weights(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """FullyConnected on the Edge TPU supports only the default weights format."""
    fmt = op.options.get("weightsFormat", 0)
    if fmt not in (0, None):
        yield Violation(f"Weights format is {fmt}.")


@rule("edgetpu.fc_output_1d", fix="Flatten the input of the Dense layer and use batch 1, so its output is [1, units].")
def fc_output_1d(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """FullyConnected on the Edge TPU must produce a one-dimensional output (a single row, batch 1)."""
    out = first_output(artifact, op)
    if out is not None and sum(1 for d in out.shape[:-1] if d != 1) > 0:
        yield Violation(f"Output '{out.name}' has shape {list(out.shape)}.", out)


@rule(
    "edgetpu.not_over_batch",
    fix="Reduce, pad, pack or split over height, width or channels only, never the batch axis.",
)
def not_over_batch(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Mean, Sum, ReduceMax/Min, Pad, Pack and Split on the Edge TPU cannot work along the batch dimension.

    Checked from shapes: the batch (first) dimension must pass through unchanged.
    """
    inp, out = first_input(artifact, op), first_output(artifact, op)
    if op.name == "SPLIT" and len(op.inputs) > 1:
        inp = artifact.tensor(op.inputs[1])  # SPLIT's first input is the axis
    if inp is None or out is None or not inp.shape or not out.shape:
        return
    if op.name == "PACK":
        if op.options.get("axis", 0) == 0:
            yield Violation("It packs along axis 0, the batch axis.", out)
        return
    keeps_rank = len(out.shape) == len(inp.shape)
    if keeps_rank and out.shape[0] != inp.shape[0]:
        yield Violation(f"Batch goes from {inp.shape[0]} to {out.shape[0]}.", out)


@rule("edgetpu.softmax_1d", fix="Apply Softmax to a flat vector of at most 16,000 values (Flatten/Dense before it).")
def softmax_1d(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Softmax on the Edge TPU supports only a 1-D input (one dimension above 1) with at most 16,000 elements."""
    inp = first_input(artifact, op)
    if inp is None:
        return
    if sum(1 for d in inp.shape if d > 1) > 1 or inp.num_elements > 16000:
        yield Violation(f"Input '{inp.name}' has shape {list(inp.shape)}.", inp)


@rule("edgetpu.concat_constant_input", fix="Concatenate only computed tensors; use Pad for zero-padding.")
def concat_constant_input(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Concatenation on the Edge TPU may take a constant input only as one of exactly 2 inputs (an all-zero pad)."""
    consts = [artifact.tensors[i] for i in op.inputs if i >= 0 and artifact.tensors[i].is_constant]
    if consts and len(op.inputs) != 2:
        yield Violation(f"It has {len(op.inputs)} inputs, {len(consts)} of them constant.", consts[0])


@rule("edgetpu.strided_slice_masks", fix="Slice without tf.newaxis or ellipsis (...) in the index expression.")
def strided_slice_masks(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """StridedSlice on the Edge TPU needs ellipsis_mask == 0 and new_axis_mask == 0."""
    if op.options.get("ellipsisMask", 0) or op.options.get("newAxisMask", 0):
        yield Violation("It uses an ellipsis or new-axis mask.", first_output(artifact, op))


# ---- the check ---------------------------------------------------------------------


def _op_violations(artifact: TfliteArtifact, op: OpInfo, runtime: int) -> tuple[list[Finding], list[Finding]]:
    """(tensor-rule findings, op-support findings) for one op, severities not yet final."""
    tensor = [get(r).finding(op, v, "error") for r in TENSOR_RULES for v in get(r).run(artifact, op)]
    support = [get("edgetpu.supported_op").finding(op, v, "error") for v in supported_op(artifact, op)]
    entry = load_table("edgetpu").ops.get(op.name)
    if entry is not None and not support:
        if entry.since is not None and entry.since > runtime:
            support.append(
                get("edgetpu.supported_op").finding(
                    op, Violation(f"{op.name} needs Edge TPU runtime {entry.since}; the target has {runtime}."), "error"
                )
            )
        for limit in entry.limits:
            support += [get(limit).finding(op, v, "error") for v in get(limit).run(artifact, op)]
    return tensor, support


def check(artifact: TfliteArtifact, runtime: int = DEFAULT_RUNTIME, accept_cpu_fallback: bool = False) -> RuleReport:
    """Run every Edge TPU rule, and work out how far the compiler's mapping reaches.

    The first op the Edge TPU cannot run is an error unless the profile accepts a CPU tail
    (`edgetpu.min_mapped_fraction` below 1): then it is a warning and the mapped-fraction gate decides.
    """
    table = load_table("edgetpu")
    findings: list[Finding] = []
    first: OpInfo | None = None
    mapped: list[int] = []
    cpu: list[int] = []
    seen_tensors: set[tuple[str, str | None]] = set()
    for op in artifact.ops:
        if is_boundary_quantize(artifact, op):
            cpu.append(op.index)
            findings.append(
                Finding(
                    op.index,
                    op.name,
                    None,
                    "edgetpu.cpu_boundary",
                    f"{op.name} converts float model I/O; it runs on the CPU.",
                    "Use int8 or uint8 model input/output (quantization.io) to keep it off the CPU.",
                    "warning",
                )
            )
            continue
        tensor, support = _op_violations(artifact, op, runtime)
        for f in tensor:  # a tensor shared by many ops is reported once per rule
            if (f.rule, f.tensor) not in seen_tensors:
                seen_tensors.add((f.rule, f.tensor))
                findings.append(f)
        unmappable = bool(tensor or support)
        if first is None and not unmappable:
            mapped.append(op.index)
            continue
        if first is None:
            first = op
            findings += (
                [_as_warning(f, "accepted: edgetpu.min_mapped_fraction < 1") for f in support]
                if accept_cpu_fallback
                else support
            )
        elif op.custom and tflm_only_custom_op(op.name):
            findings += support  # no CPU fallback either: LiteRT has no kernel for it
        else:
            findings += [_as_warning(f) for f in support]
        cpu.append(op.index)

    if first is not None:
        later = [i for i in cpu if i > first.index]
        if later:
            findings.append(
                Finding(
                    first.index,
                    first.name,
                    None,
                    "edgetpu.cpu_fallback",
                    f"The Edge TPU compiler stops mapping at op {first.index} ({first.name}); "
                    f"it and the {len(later)} op(s) after it run on the CPU.",
                    "Fix the first unsupported op so the mapping can continue past it.",
                    "warning",
                )
            )

    total_ops = len(artifact.ops)
    macs = artifact.macs_per_op
    total_macs = sum(macs)
    mapped_macs = sum(macs[i] for i in mapped)
    extra = {
        "first_unsupported": None if first is None else {"index": first.index, "op": first.name},
        "mapped_ops": len(mapped),
        "total_ops": total_ops,
        "mapped_ops_fraction": round(len(mapped) / total_ops, 4) if total_ops else 1.0,
        "mapped_macs": mapped_macs,
        "total_macs": total_macs,
        "mapped_macs_fraction": round(mapped_macs / total_macs, 4) if total_macs else (1.0 if first is None else 0.0),
        "edgetpu_runtime": runtime,
    }
    return RuleReport("edgetpu", table.runtime, findings, extra)


def _as_warning(f: Finding, why: str = "already on the CPU after the first unsupported op") -> Finding:
    return Finding(f.op_index, f.op, f.tensor, f.rule, f"{f.message} ({why})", f.fix, "warning")
