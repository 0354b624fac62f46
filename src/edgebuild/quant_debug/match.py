"""Which tensor of one graph is which tensor of another.

The float32 and the int8 conversion of the same model keep each op's output tensor name (the converter
names a tensor after the TensorFlow ops fused into it), so the artifact and the float model match by
name. The debug model's names are the quantizer's: a NumericVerify op reads the quantized op's output
(its name suffixed with one digit where the float twin took the original name) and the float twin's
output; the TFLite debugger strips that one digit to name the layer, and so does `added_pairs`, with
the shape checked too.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebuild.quant_debug.capture import KeptModel, Op, Tensor

NUMERIC_VERIFY = "NumericVerify"
# Ops that only move or select values: their output has the input's scale, and any error they carry
# was made upstream. A value kept at higher precision has to pass through them to reach its reader.
PASS_THROUGH = {
    "MAX_POOL_2D",
    "RESHAPE",
    "SQUEEZE",
    "EXPAND_DIMS",
    "TRANSPOSE",
    "PAD",
    "PADV2",
    "SLICE",
    "STRIDED_SLICE",
    "GATHER",
    "SPLIT",
    "SPLIT_V",
    "CONCATENATION",
    "PACK",
    "UNPACK",
    "SPACE_TO_DEPTH",
    "DEPTH_TO_SPACE",
    "RESIZE_NEAREST_NEIGHBOR",
    "MAXIMUM",
    "MINIMUM",
    "RELU",
    "RELU6",
    "RELU_N1_TO_1",
}
IO_OPS = {"QUANTIZE", "DEQUANTIZE"}


@dataclass(frozen=True)
class Pair:
    """One layer's output in both graphs: `op` is the artifact op that writes it."""

    op: Op
    tensor: Tensor  # in the artifact
    reference: int  # tensor index in the other graph (float model, or the debug model's float twin)
    candidate: int  # tensor index whose value is compared (artifact, or the debug model's quantized output)
    candidate_tensor: Tensor


def cumulative_pairs(artifact: KeptModel, float_model: KeptModel) -> tuple[list[Pair], list[str]]:
    """Each artifact op's output against the float model's tensor of the same name, in execution order.

    Returns the pairs and the names of quantized outputs that have no float twin.
    """
    pairs: list[Pair] = []
    unmatched: list[str] = []
    for op in artifact.ops:
        for index in op.outputs:
            tensor = artifact.tensors[index]
            twin = float_model.by_name.get(tensor.name)
            stripped = _strip_digit(tensor.name)
            if (twin is None or twin.shape != tensor.shape) and stripped:  # a quantized op renamed by one digit
                twin = float_model.by_name.get(stripped)
            if twin is None or twin.shape != tensor.shape:
                if tensor.quantized and op.name not in IO_OPS:
                    unmatched.append(tensor.name)
                continue
            pairs.append(Pair(op=op, tensor=tensor, reference=twin.index, candidate=index, candidate_tensor=tensor))
    return pairs, unmatched


def added_pairs(artifact: KeptModel, debug_model: KeptModel) -> dict[str, Pair]:
    """Artifact tensor name -> the debug model's (float twin, quantized op output) pair for that layer."""
    out: dict[str, Pair] = {}
    producer = artifact.producer()
    for op in debug_model.ops:
        if op.name != NUMERIC_VERIFY or len(op.inputs) < 2:
            continue
        quantized, floating = (debug_model.tensors[i] for i in op.inputs[:2])
        names = [n for base in (quantized.name, floating.name) for n in (_strip_digit(base), base) if n]
        for name in names:
            target = artifact.by_name.get(name)
            if (
                target is None
                or not target.quantized
                or target.shape != quantized.shape
                or name in out
                or target.index not in producer
            ):
                continue
            out[name] = Pair(
                op=producer[target.index],
                tensor=target,
                reference=floating.index,
                candidate=quantized.index,
                candidate_tensor=quantized,
            )
            break
    return out


def _strip_digit(name: str) -> str | None:
    return name[:-1] if name and name[-1].isdigit() else None


def readers_to_keep(model: KeptModel, op: Op) -> list[Op]:
    """The ops that must also stay at higher precision for `op`'s output to reach its readers unrounded.

    Following the output through pass-through ops (pooling, reshapes) to the first op that computes
    with it (a convolution, a dense layer, an add): if any of them went back to int8, the value would
    be rounded to the same per-tensor scale that broke it.
    """
    consumers = model.consumers()
    kept: list[Op] = []
    frontier = list(op.outputs)
    seen: set[int] = set()
    while frontier:
        tensor = frontier.pop()
        for reader in consumers.get(tensor, []):
            if reader.index in seen or reader.name in IO_OPS:
                continue
            seen.add(reader.index)
            kept.append(reader)
            if reader.name in PASS_THROUGH:
                frontier.extend(reader.outputs)
    return sorted(kept, key=lambda o: o.index)
