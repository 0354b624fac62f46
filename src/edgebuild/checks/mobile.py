"""Mobile rules: ops the LiteRT CPU (XNNPACK) and GPU delegates take, and float16 weights.

An op neither delegate takes still runs on LiteRT's own CPU kernels, just
slower, so those findings are warnings. The one error is a custom op that only
TensorFlow Lite Micro implements (its signal library's SignalWindow, ...):
LiteRT has no kernel for it and refuses to load the model.
"""

from __future__ import annotations

from collections.abc import Iterator

from edgebuild.artifact import OpInfo, TfliteArtifact

from .findings import Finding, RuleReport
from .rules import Violation, dynamic_roots, get, only_batch_dynamic, rule, shape_str
from .tables import load_table, tflm_only_custom_op


@rule(
    "mobile.litert_kernel",
    fix="Keep ops that only TensorFlow Lite Micro implements (e.g. the signal-library "
    "audio front end) out of the mobile model: compute them in the app, or register a LiteRT custom kernel for each.",
)
def litert_kernel(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Every op needs a LiteRT kernel: custom ops that only TensorFlow Lite Micro implements do not load."""
    if op.custom and tflm_only_custom_op(op.name):
        yield Violation(
            f"{op.name} is a TensorFlow Lite Micro custom op; LiteRT has no kernel for it "
            '("Encountered unresolved custom op").'
        )


@rule(
    "mobile.delegate_op",
    fix="Use an op XNNPACK or the GPU delegate supports, or accept that this op "
    "splits the delegated graph and runs on LiteRT's reference CPU kernels.",
)
def delegate_op(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Each op should be one the XNNPACK (CPU) or GPU delegate takes, so the graph is not split."""
    if op.custom and tflm_only_custom_op(op.name):
        return  # mobile.litert_kernel: it does not run at all
    if op.custom or (op.name not in load_table("xnnpack") and op.name not in load_table("gpu")):
        yield Violation(f"Neither XNNPACK nor the GPU delegate takes {op.name}.")


@rule(
    "mobile.float16_weights",
    fix='Convert with quantization.scheme = "float16" (half the size, native on mobile GPUs) or "int8".',
)
def float16_weights(artifact: TfliteArtifact, op: OpInfo | None = None) -> Iterator[Violation]:
    """Mobile float models should store their weights as float16."""
    weights = artifact.weight_dtypes()
    if weights.get("float32", 0) and not weights.get("float16", 0):
        biggest = max(
            (t for t in artifact.tensors if t.is_constant and t.dtype == "float32"), key=lambda t: t.constant_bytes
        )
        yield Violation(f"{weights['float32']} bytes of weights are float32 and none are float16.", biggest)


@rule(
    "mobile.static_shape",
    fix="Give the model a fixed input shape before converting; the GPU delegate needs static shapes.",
)
def static_shape(artifact: TfliteArtifact, op: OpInfo) -> Iterator[Violation]:
    """Mobile delegates need static shapes: the GPU delegate rejects dynamic tensors.

    A -1 batch that the file fixes to 1 is fine; other unknown dimensions are not.
    """
    roots = dynamic_roots(artifact)
    for index in (*op.inputs, *op.outputs):
        if index in roots and not only_batch_dynamic(artifact.tensors[index]):
            t = artifact.tensors[index]
            yield Violation(f"Tensor '{t.name}' has shape {shape_str(t)}.", t)
            return


def check(artifact: TfliteArtifact) -> RuleReport:
    """Run every mobile rule; all findings are warnings except ops LiteRT has no kernel for."""
    xnn, gpu = load_table("xnnpack"), load_table("gpu")
    findings: list[Finding] = []
    for op in artifact.ops:
        findings += [get("mobile.litert_kernel").finding(op, v, "error") for v in litert_kernel(artifact, op)]
        findings += [get("mobile.delegate_op").finding(op, v, "warning") for v in delegate_op(artifact, op)]
        findings += [get("mobile.static_shape").finding(op, v, "warning") for v in static_shape(artifact, op)]
    findings += [get("mobile.float16_weights").finding(None, v, "warning") for v in float16_weights(artifact)]
    total = len(artifact.ops) or 1
    extra = {
        "xnnpack_ops_fraction": round(sum(op.name in xnn for op in artifact.ops) / total, 4),
        "gpu_ops_fraction": round(sum(op.name in gpu for op in artifact.ops) / total, 4),
        "weight_dtypes": artifact.weight_dtypes(),
    }
    return RuleReport("mobile", f"{xnn.runtime}; {gpu.runtime}", findings, extra)
